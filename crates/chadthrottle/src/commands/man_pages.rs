//! `man DIR` (hidden, run when the package is built): the man pages — chadthrottle(1),
//! which lists the commands, and chadthrottle-COMMAND(1) for each, with its options —
//! rendered from the grammar in `cli`, so they cannot fall behind it.

use crate::cli::Cli;
use anyhow::Context as _;
use clap::CommandFactory as _;
use std::io::Write;
use std::path::Path;

/// The commands a user is shown (in help, pages and tests), not the hidden ones.
pub fn visible_commands(command: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    command.get_subcommands().filter(|sub| !sub.is_hide_set())
}

/// One man page: its file name (`chadthrottle-limit.1`) and its roff source.
pub struct Page {
    pub file_name: String,
    pub roff: Vec<u8>,
}

/// Writes every page into `dir` (created if missing), and the path of each to `out`.
pub fn run(dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for page in pages()? {
        let path = dir.join(&page.file_name);
        std::fs::write(&path, &page.roff).with_context(|| format!("writing {}", path.display()))?;
        writeln!(out, "{}", path.display())?;
    }
    Ok(())
}

/// The main page, then one per command a user sees (not `help`, not this hidden one).
pub fn pages() -> anyhow::Result<Vec<Page>> {
    // built once, so the global options appear on every command's page
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let commands = visible_commands(&command).cloned().collect::<Vec<_>>();
    std::iter::once(command)
        .chain(commands)
        .map(|command| {
            // every page says which release it documents, not only the main one
            let man = clap_mangen::Man::new(command)
                .source(format!("chadthrottle {}", env!("CARGO_PKG_VERSION")));
            let mut roff = Vec::new();
            man.render(&mut roff)?;
            Ok(Page {
                file_name: man.get_filename(),
                roff,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page's text as a reader sees the words: roff's escaped hyphens and font changes
    /// taken out (`\fB\-\-pid\fR` reads `--pid`).
    fn words(page: &Page) -> String {
        let roff = String::from_utf8(page.roff.clone()).expect("roff is UTF-8");
        ["\\fB", "\\fI", "\\fR", "\\fP"]
            .into_iter()
            .fold(roff.replace("\\-", "-"), |text, font| {
                text.replace(font, "")
            })
    }

    /// Whether `text` names `arg` as a user types it: `--long` not followed by more of an
    /// option's name (so `--up` is not found in `--upload-backend`), `-s`, or a positional
    /// argument's `<VALUE>` (`[VALUE]` when it may be left out).
    fn names(text: &str, arg: &clap::Arg) -> bool {
        let token = match (arg.get_long(), arg.get_short()) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(short)) => format!("-{short}"),
            (None, None) => {
                let value = arg
                    .get_value_names()
                    .and_then(|names| names.first())
                    .expect("a positional has a name");
                return text.contains(&format!("<{value}>"))
                    || text.contains(&format!("[{value}]"));
            }
        };
        text.match_indices(&token).any(|(at, _)| {
            !text[at + token.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
        })
    }

    /// The grammar as the pages are made from it, with the global options on every command.
    fn grammar() -> clap::Command {
        let mut command = Cli::command().disable_help_subcommand(true);
        command.build();
        command
    }

    fn page<'a>(pages: &'a [Page], file_name: &str) -> &'a Page {
        pages
            .iter()
            .find(|page| page.file_name == file_name)
            .unwrap_or_else(|| panic!("no page {file_name}"))
    }

    #[test]
    fn the_main_page_names_every_command_and_option() {
        let pages = pages().expect("rendered");
        let command = grammar();
        let main = words(page(&pages, "chadthrottle.1"));
        let references: Vec<String> = visible_commands(&command)
            .map(|sub| format!("chadthrottle-{}(1)", sub.get_name()))
            .collect();
        assert!(references.len() >= 10, "{references:?}");
        let missing = references
            .iter()
            .filter(|reference| !main.contains(reference.as_str()));
        assert_eq!(
            missing.collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "not in chadthrottle.1"
        );
        let args = command.get_arguments().filter(|arg| !arg.is_hide_set());
        let missing: Vec<_> = args
            .filter(|arg| !names(&main, arg))
            .map(clap::Arg::get_id)
            .collect();
        assert!(missing.is_empty(), "chadthrottle.1 lacks {missing:?}");
    }

    #[test]
    fn every_command_has_a_page_naming_each_of_its_options() {
        let pages = pages().expect("rendered");
        let grammar = grammar();
        for sub in visible_commands(&grammar) {
            let file_name = format!("chadthrottle-{}.1", sub.get_name());
            let text = words(page(&pages, &file_name));
            let args: Vec<_> = sub
                .get_arguments()
                .filter(|arg| !arg.is_hide_set())
                .collect();
            // the global options and --help at least
            assert!(args.len() >= 9, "{file_name}: {} options", args.len());
            for arg in args {
                assert!(names(&text, arg), "{file_name} lacks {}", arg.get_id());
            }
            assert!(
                text.contains(&format!("chadthrottle {}", env!("CARGO_PKG_VERSION"))),
                "{file_name} does not name the release"
            );
        }
        assert_eq!(pages.len(), 1 + visible_commands(&grammar).count());
    }

    #[test]
    fn the_check_finds_a_missing_option() {
        // the test above passes only because the pages name the options, not because
        // `names` finds everything
        let text = "\\fB\\-\\-upload\\-backend\\fR <\\fIFILE\\fR>";
        let page = Page {
            file_name: "x.1".into(),
            roff: text.as_bytes().to_vec(),
        };
        let text = words(&page);
        assert!(names(&text, &clap::Arg::new("b").long("upload-backend")));
        assert!(!names(&text, &clap::Arg::new("u").long("up")));
        assert!(names(&text, &clap::Arg::new("f").value_name("FILE")));
        assert!(!names(&text, &clap::Arg::new("d").value_name("DIR")));
    }

    #[test]
    fn run_writes_every_page_and_lists_it() {
        let dir = std::env::temp_dir().join(format!("ct-man-test-{}", std::process::id()));
        let mut out = Vec::new();
        run(&dir.join("man1"), &mut out).expect("written");
        let mut written: Vec<String> = std::fs::read_dir(dir.join("man1"))
            .expect("the directory was created")
            .map(|entry| {
                entry
                    .expect("listed")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        written.sort();
        let mut expected: Vec<String> = pages()
            .expect("rendered")
            .into_iter()
            .map(|page| page.file_name)
            .collect();
        expected.sort();
        let listed = String::from_utf8(out).expect("paths are UTF-8");
        std::fs::remove_dir_all(&dir).expect("removed");
        assert_eq!(written, expected);
        assert_eq!(listed.lines().count(), expected.len(), "{listed}");
    }
}
