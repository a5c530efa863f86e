//! `completions SHELL`: the shell's completion script, generated from the grammar in `cli`
//! so that it offers every command and option there is.

use crate::cli::Cli;
use crate::commands::man_pages::visible_commands;
use clap::CommandFactory as _;
use clap_complete::Shell;
use std::io::Write;

/// Writes `shell`'s completion script to `out`.
pub fn run(shell: Shell, out: &mut dyn Write) -> anyhow::Result<()> {
    out.write_all(&script(shell))?;
    Ok(())
}

/// The script, generated into memory: clap_complete panics when its writer fails, and a
/// full disk or a closed pipe should be an error message like any other.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut offered(), "chadthrottle", &mut script);
    script
}

/// The grammar the scripts offer: `Cli`'s without its hidden commands (`man`, run when
/// the package is built), which clap_complete would offer like any other.
fn offered() -> clap::Command {
    let full = Cli::command();
    let mut command = clap::Command::new("chadthrottle")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .groups(full.get_groups().cloned())
        .subcommands(visible_commands(&full).cloned());
    if let Some(about) = full.get_about() {
        command = command.about(about.clone());
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::SHELLS;
    use std::process::Command;

    fn visible(command: &clap::Command) -> Vec<String> {
        visible_commands(command)
            .map(|sub| sub.get_name().to_owned())
            .collect()
    }

    /// How `shell`'s script offers a command and a long option (`@` stands for the name).
    fn forms(shell: Shell) -> (&'static str, &'static str) {
        match shell {
            Shell::Bash => ("chadthrottle,@)", " --@ "),
            Shell::Zsh => ("'@:", "'--@"),
            Shell::Fish => ("-a \"@\"", "-l @ "),
            other => unreachable!("no check for {other}"),
        }
    }

    #[test]
    fn every_shell_names_every_command_and_option() {
        let mut grammar = Cli::command();
        grammar.build();
        let commands = visible(&grammar);
        assert!(commands.len() >= 10, "{commands:?}");
        for (name, shell) in SHELLS {
            let text = String::from_utf8(script(shell)).expect("scripts are UTF-8");
            let (command_form, option_form) = forms(shell);
            for command in &commands {
                assert!(
                    text.contains(&command_form.replace('@', command)),
                    "{name}: {command} not offered"
                );
            }
            for sub in visible_commands(&grammar) {
                for long in sub.get_arguments().filter_map(clap::Arg::get_long) {
                    assert!(
                        text.contains(&option_form.replace('@', long)),
                        "{name}: --{long} of {} not offered",
                        sub.get_name()
                    );
                }
            }
        }
    }

    #[test]
    fn no_shell_offers_a_hidden_command() {
        let grammar = Cli::command();
        let hidden: Vec<&str> = grammar
            .get_subcommands()
            .filter(|sub| sub.is_hide_set())
            .map(clap::Command::get_name)
            .collect();
        assert!(hidden.contains(&"man"), "{hidden:?}");
        for (name, shell) in SHELLS {
            let text = String::from_utf8(script(shell)).expect("scripts are UTF-8");
            let (command_form, _) = forms(shell);
            // the form that offers a visible command does find one (the check can fail)
            assert!(text.contains(&command_form.replace('@', "usage")), "{name}");
            for command in &hidden {
                assert!(
                    !text.contains(&command_form.replace('@', command)),
                    "{name} offers the hidden {command}"
                );
            }
        }
        let offered = bash_offers(&["chadthrottle", ""]);
        assert!(offered.iter().any(|word| word == "usage"), "{offered:?}");
        assert!(!offered.iter().any(|word| word == "man"), "{offered:?}");
        let offered = bash_offers(&["chadthrottle", "help", ""]);
        assert!(!offered.iter().any(|word| word == "man"), "{offered:?}");
    }

    /// What bash offers after `words` (the last one being completed), with the script
    /// loaded as bash-completion loads it.
    fn bash_offers(words: &[&str]) -> Vec<String> {
        let script = String::from_utf8(script(Shell::Bash)).expect("UTF-8");
        let quoted: Vec<String> = words.iter().map(|word| format!("'{word}'")).collect();
        let program = format!(
            "{script}\nCOMP_WORDS=({words}); COMP_CWORD={cword}; \
             _chadthrottle chadthrottle '{current}' '{previous}'; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words = quoted.join(" "),
            cword = words.len() - 1,
            current = words[words.len() - 1],
            previous = words[words.len() - 2],
        );
        let output = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &program])
            .output()
            .expect("bash runs");
        assert!(
            output.status.success(),
            "bash: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("UTF-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn bash_completes_commands_and_a_commands_options() {
        let offered = bash_offers(&["chadthrottle", ""]);
        for command in visible(&Cli::command()) {
            assert!(offered.contains(&command), "{command} not in {offered:?}");
        }
        let offered = bash_offers(&["chadthrottle", "limit", "--"]);
        for long in [
            "--pid",
            "--exe",
            "--up",
            "--down",
            "--burst",
            "--for",
            "--save",
            "--pin-dir",
        ] {
            assert!(
                offered.iter().any(|word| word == long),
                "{long} not in {offered:?}"
            );
        }
        assert!(!offered.iter().any(|word| word == "--json"), "{offered:?}");
        // with no letter typed, bash offers the options beside the values
        let offered = bash_offers(&["chadthrottle", "completions", ""]);
        let values: Vec<&String> = offered
            .iter()
            .filter(|word| !word.starts_with('-'))
            .collect();
        assert_eq!(values, ["bash", "zsh", "fish"]);
    }
}
