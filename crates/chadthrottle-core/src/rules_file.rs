//! The rules file (`/etc/chadthrottle/rules.toml`): reading it into [`RuleSpec`]s with
//! errors at `FILE:LINE:COL`, and writing one rule into it for `limit --save` (or taking
//! one out, for the TUI's removal of a rule it saved).
//!
//! ```toml
//! [[rule]]
//! name = "steam"             # required, unique: [A-Za-z0-9_.-], at most 63 bytes
//! exe = "/usr/bin/steam"     # exactly one target: exe | process_name | unit | container
//!                            #   | cgroup_path | user (a name, or a uid as a number)
//! down = "5M"                # rates as the command line takes them; at least one of up, down
//! up = "1M"
//! burst = "1M"               # optional, both directions; burst_up / burst_down override it
//! mode = "shared"            # or "each"; default shared
//! upload_backend = "shaping" # optional: shaping | policer; default the best available
//! download_backend = "policer"
//! enabled = true             # default true; a disabled rule is kept but not applied
//! ```
//!
//! The process-name target is `process_name`, not `name`, which names the rule. PIDs and
//! process trees are refused (a PID does not survive a reboot). Unknown keys are refused.
//! A rule's order is its index in the file, disabled rules counted: it breaks ties.

use crate::direction::{Direction, PerDirection};
use crate::file_error::{FileError, line_column};
use crate::rate::{Rate, Size, format_bytes};
use crate::rule_target::{
    Mode, RULE_NAME_MAX, RuleLimit, RuleSpec, RuleTarget, TargetError, UserSpec, parse_cgroup_path,
    parse_container, parse_exe, parse_name, parse_rule_name, parse_unit, parse_user,
};
use crate::status::Enforcement;
use serde::Deserialize;
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use toml::Spanned;

/// The most rules a file may hold (and the kernel's rule table).
pub const MAX_RULES: usize = 4096;

/// The target keys, in the order messages list them.
const TARGET_KEYS: &str = "exe, process_name, unit, container, cgroup_path or user";

/// A refused rules file, where and why: `rules.toml:3:7: …`.
pub type RulesFileError = FileError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

type Field<T = String> = Option<Spanned<T>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Field,
    exe: Field,
    process_name: Field,
    unit: Field,
    container: Field,
    cgroup_path: Field,
    user: Field<toml::Value>,
    pid: Field<toml::Value>,
    tree: Field<toml::Value>,
    up: Field,
    down: Field,
    burst: Field,
    burst_up: Field,
    burst_down: Field,
    mode: Field,
    upload_backend: Field,
    download_backend: Field,
    enabled: Option<bool>,
}

/// Turns byte offsets into `FILE:LINE:COL` errors.
struct Located<'a> {
    file: String,
    text: &'a str,
}

impl Located<'_> {
    fn error(&self, span: &Range<usize>, message: impl Into<String>) -> RulesFileError {
        let (line, column) = line_column(self.text, span.start);
        RulesFileError {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    /// `field` through `parse`, its refusal reported where the value is.
    fn parse<T, E: std::fmt::Display>(
        &self,
        field: &Spanned<String>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, RulesFileError> {
        parse(field.get_ref()).map_err(|error| self.error(&field.span(), error.to_string()))
    }

    fn line(&self, span: &Range<usize>) -> usize {
        line_column(self.text, span.start).0
    }
}

/// The rules in `text`, read from `file`, in file order (`order` = index). The first
/// problem found is the error.
pub fn parse_rules(file: &Path, text: &str) -> Result<Vec<RuleSpec>, RulesFileError> {
    let at = Located {
        file: file.display().to_string(),
        text,
    };
    let raw: RawFile = toml::from_str(text).map_err(|error| {
        let span = error.span().unwrap_or(0..0);
        at.error(&span, error.message().trim_end())
    })?;
    if let Some(extra) = raw.rule.get(MAX_RULES) {
        let message = format!("more than {MAX_RULES} rules: the kernel holds {MAX_RULES} at most");
        return Err(at.error(&extra.span(), message));
    }
    let mut rules = Vec::with_capacity(raw.rule.len());
    // Where a name, a target was first used (the line is found only for a message).
    let mut names: HashMap<String, Range<usize>> = HashMap::new();
    let mut targets: HashMap<RuleTarget, (Range<usize>, String)> = HashMap::new();
    for (index, raw_rule) in raw.rule.iter().enumerate() {
        let order = u32::try_from(index).unwrap_or(u32::MAX);
        let (rule, name_span, target_span) = parse_rule(&at, raw_rule, order)?;
        if let Some(first) = names.insert(rule.name.clone(), name_span.clone()) {
            let message = format!(
                "rule name \"{}\" is already used on line {}: names must be unique",
                rule.name,
                at.line(&first)
            );
            return Err(at.error(&name_span, message));
        }
        let first = (target_span.clone(), rule.name.clone());
        if let Some((first, other)) = targets.insert(rule.target.clone(), first) {
            let message = format!(
                "rule \"{}\" targets {}, as rule \"{other}\" on line {} does: one rule per target",
                rule.name,
                rule.target,
                at.line(&first)
            );
            return Err(at.error(&target_span, message));
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// One rule, with the spans of its name and target for the duplicate checks.
fn parse_rule(
    at: &Located<'_>,
    raw: &Spanned<RawRule>,
    order: u32,
) -> Result<(RuleSpec, Range<usize>, Range<usize>), RulesFileError> {
    let rule = raw.get_ref();
    let Some(name) = &rule.name else {
        let message = "a rule has no name: give name = \"…\", unique in the file";
        return Err(at.error(&raw.span(), message));
    };
    let rule_name = at.parse(name, parse_rule_name)?;
    let named = |message: String| format!("rule \"{rule_name}\" {message}");
    for (key, field) in [("pid", &rule.pid), ("tree", &rule.tree)] {
        if let Some(field) = field {
            let message = named(format!(
                "has a {key}, and PIDs do not survive a reboot: use `chadthrottle limit --pid PID --tree` or `chadthrottle run` instead"
            ));
            return Err(at.error(&field.span(), message));
        }
    }
    let (target, target_span) = parse_target(at, rule, &raw.span(), &named)?;
    let mut limits = PerDirection::from_fn(|_| None);
    for direction in Direction::ALL {
        let [rate, burst, backend] = match direction {
            Direction::Up => [&rule.up, &rule.burst_up, &rule.upload_backend],
            Direction::Down => [&rule.down, &rule.burst_down, &rule.download_backend],
        };
        let Some(rate) = rate else {
            if let Some(extra) = burst.as_ref().or(backend.as_ref()) {
                let message = named(format!(
                    "sets no {direction} rate: give {direction} = \"RATE\" or remove this"
                ));
                return Err(at.error(&extra.span(), message));
            }
            continue;
        };
        let burst = burst.as_ref().or(rule.burst.as_ref());
        *limits.get_mut(direction) = Some(RuleLimit {
            rate: at.parse(rate, Rate::from_str)?,
            burst: burst.map(|b| at.parse(b, Size::from_str)).transpose()?,
            backend: backend
                .as_ref()
                .map(|b| at.parse(b, |name| rule_backend(name, direction)))
                .transpose()?,
        });
    }
    if limits.up.is_none() && limits.down.is_none() {
        let message = named("limits nothing: give up = \"RATE\", down = \"RATE\" or both".into());
        return Err(at.error(&raw.span(), message));
    }
    let spec = RuleSpec {
        name: rule_name,
        target,
        limits,
        mode: match &rule.mode {
            Some(mode) => at.parse(mode, Mode::from_str)?,
            None => Mode::default(),
        },
        order,
        enabled: rule.enabled.unwrap_or(true),
    };
    Ok((spec, name.span(), target_span))
}

/// The one target key of `rule` (whose table spans `rule_span`).
fn parse_target(
    at: &Located<'_>,
    rule: &RawRule,
    rule_span: &Range<usize>,
    named: &dyn Fn(String) -> String,
) -> Result<(RuleTarget, Range<usize>), RulesFileError> {
    type Parse = fn(&str) -> Result<RuleTarget, TargetError>;
    let strings: [(&str, &Field, Parse); 5] = [
        ("exe", &rule.exe, |path| parse_exe(Path::new(path))),
        ("process_name", &rule.process_name, parse_name),
        ("unit", &rule.unit, parse_unit),
        ("container", &rule.container, parse_container),
        ("cgroup_path", &rule.cgroup_path, parse_cgroup_path),
    ];
    let mut found = strings
        .into_iter()
        .filter_map(|(key, field, parse)| {
            let field = field.as_ref()?;
            Some((key, field.span(), parse(field.get_ref())))
        })
        .chain(rule.user.as_ref().map(|user| {
            let target = match user.get_ref() {
                toml::Value::String(name) => parse_user(name),
                other => parse_user(&other.to_string()),
            };
            ("user", user.span(), target)
        }));
    let Some((key, span, target)) = found.next() else {
        let message = named(format!("has no target: give one of {TARGET_KEYS}"));
        return Err(at.error(rule_span, message));
    };
    if let Some((second, second_span, _)) = found.next() {
        let message = named(format!(
            "has two targets, {key} and {second}: give exactly one"
        ));
        return Err(at.error(&second_span, message));
    }
    let target = target.map_err(|error| at.error(&span, error.to_string()))?;
    Ok((target, span))
}

/// An error about rule `index` of `text` (as [`parse_rules`] read it) found after reading,
/// when the machine is asked (a user not in the user database, a unit not running): at
/// its target key, else at its `[[rule]]`. Apply points at the line the operator edits.
pub fn rule_error(file: &Path, text: &str, index: usize, message: &str) -> RulesFileError {
    let at = Located {
        file: file.display().to_string(),
        text,
    };
    let place = toml::from_str::<RawFile>(text)
        .ok()
        .and_then(|raw| {
            let rule = raw.rule.get(index)?;
            let raw_rule = rule.get_ref();
            let target = [
                &raw_rule.exe,
                &raw_rule.process_name,
                &raw_rule.unit,
                &raw_rule.container,
                &raw_rule.cgroup_path,
            ]
            .into_iter()
            .find_map(|field| field.as_ref().map(Spanned::span))
            .or_else(|| raw_rule.user.as_ref().map(Spanned::span));
            Some(target.unwrap_or_else(|| rule.span()))
        })
        .unwrap_or(0..0);
    at.error(&place, message)
}

/// A name in the file's syntax for a rule on `target` that `limit --save` writes: the
/// target's kind and its last word (`exe-steam`, `unit-syncthing.service`, `user-alice`),
/// other bytes as `-`, made unique among `taken` with `-2`, `-3`, ….
pub fn file_rule_name(target: &RuleTarget, taken: &[&str]) -> String {
    let value = match target {
        RuleTarget::Exe(path) => path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        RuleTarget::CgroupPath(path) => path.trim_matches('/').to_owned(),
        RuleTarget::Tree(pid) => pid.to_string(),
        RuleTarget::Name(value) | RuleTarget::Unit(value) | RuleTarget::Container(value) => {
            value.clone()
        }
        RuleTarget::User(user) => user.to_string(),
    };
    let value = if value.is_empty() {
        "root".into()
    } else {
        value
    };
    let plain: String = format!("{}-{value}", target.kind())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let fit = |text: &str, room: usize| text.get(..room.min(text.len())).unwrap_or(text).to_owned();
    let base = fit(&plain, RULE_NAME_MAX);
    let mut candidate = base.clone();
    let mut number = 2_u32;
    while taken.contains(&candidate.as_str()) {
        let suffix = format!("-{number}");
        candidate = format!("{}{suffix}", fit(&base, RULE_NAME_MAX - suffix.len()));
        number += 1;
    }
    candidate
}

/// The backends a rule can name for `direction`: shaping and the policer, and ifb for a
/// download (whether the rule's mode allows it is checked with the mode, when applied).
fn rule_backend(name: &str, direction: Direction) -> Result<Enforcement, String> {
    match Enforcement::from_name(name) {
        Some(found @ (Enforcement::Shaping | Enforcement::Policer)) => Ok(found),
        Some(Enforcement::Ifb) if direction == Direction::Down => Ok(Enforcement::Ifb),
        _ => Err(format!(
            "{direction} backend \"{name}\" is not one for rules: shaping or policer{}",
            if direction == Direction::Down {
                ", or ifb"
            } else {
                ""
            }
        )),
    }
}

/// Why a rule cannot be saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaveError {
    /// The file as it is, or as it would be with the rule, is refused.
    #[error(transparent)]
    File(#[from] RulesFileError),
    #[error(
        "rule \"{0}\" limits a process tree, and PIDs do not survive a reboot: it cannot be saved in the rules file"
    )]
    Tree(String),
    /// The file with the rule would be refused: the message without the new text's place.
    #[error("saving rule \"{rule}\" would make the rules file invalid: {message}")]
    Breaks { rule: String, message: String },
    #[error("rule \"{0}\": executable \"{1}\" is not UTF-8, which TOML cannot hold")]
    NotUtf8(String, String),
}

/// `text` (the rules file read from `file`) with `rule` in it: in place of the rule of the
/// same name, else appended. The rest of the file is kept as written, comments included;
/// a replaced rule keeps the comment lines above its `[[rule]]`, but comments on its own
/// key lines go with the keys. The file must read as it is, and with the rule.
pub fn save_rule(file: &Path, text: &str, rule: &RuleSpec) -> Result<String, SaveError> {
    let (at, mut document, _) = editable(file, text)?;
    let mut table = rule_table(rule)?;
    let rules = document
        .entry("rule")
        .or_insert_with(|| toml_edit::ArrayOfTables::new().into())
        .as_array_of_tables_mut();
    let Some(rules) = rules else {
        let message = "\"rule\" is not a list of [[rule]] tables";
        return Err(at.error(&(0..0), message).into());
    };
    let same_name = rules
        .iter_mut()
        .find(|t| t.get("name").and_then(toml_edit::Item::as_str) == Some(rule.name.as_str()));
    match same_name {
        Some(old) => {
            table.decor_mut().clone_from(old.decor());
            *old = table;
        }
        None => rules.push(table),
    }
    let saved = document.to_string();
    match parse_rules(file, &saved) {
        Ok(_) => Ok(saved),
        Err(error) => Err(SaveError::Breaks {
            rule: rule.name.clone(),
            message: error.message,
        }),
    }
}

/// `text` (the rules file read from `file`) without its rule on `target`, kept as written
/// otherwise (the comment lines above the rule go with it); `None` if no rule in it has
/// that target. The file must read as it is.
pub fn forget_rule(
    file: &Path,
    text: &str,
    target: &RuleTarget,
) -> Result<Option<String>, SaveError> {
    let (_, mut document, rules) = editable(file, text)?;
    let Some(index) = rules.iter().position(|rule| rule.target == *target) else {
        return Ok(None);
    };
    // the file read, so "rule" is the list of tables its rules came from, in order
    let tables = document
        .get_mut("rule")
        .and_then(toml_edit::Item::as_array_of_tables_mut);
    let Some(tables) = tables.filter(|tables| index < tables.len()) else {
        return Ok(None);
    };
    // the comment block right above the rule goes with it; paragraphs before it (a header
    // of the file, a section's title) stay, above the next rule or at the end
    let prefix = tables
        .get(index)
        .and_then(|table| table.decor().prefix())
        .and_then(toml_edit::RawString::as_str)
        .unwrap_or_default();
    let kept = prefix
        .rfind("\n\n")
        .map_or(String::new(), |at| prefix[..at + 2].to_owned());
    tables.remove(index);
    match tables.get_mut(index) {
        Some(next) if !kept.is_empty() => {
            let own = next
                .decor()
                .prefix()
                .and_then(toml_edit::RawString::as_str)
                .unwrap_or_default();
            let joined = format!("{kept}{}", own.trim_start_matches('\n'));
            next.decor_mut().set_prefix(joined);
        }
        Some(_) => {}
        None => {
            let trailing = document.trailing().as_str().unwrap_or_default();
            let joined = format!("{kept}{trailing}");
            document.set_trailing(joined);
        }
    }
    if document
        .get("rule")
        .and_then(toml_edit::Item::as_array_of_tables)
        .is_some_and(toml_edit::ArrayOfTables::is_empty)
    {
        document.remove("rule");
    }
    Ok(Some(document.to_string()))
}

/// The file's text as a document that keeps its layout, with its rules as read: refused
/// if it does not read.
fn editable<'a>(
    file: &Path,
    text: &'a str,
) -> Result<(Located<'a>, toml_edit::DocumentMut, Vec<RuleSpec>), SaveError> {
    let at = Located {
        file: file.display().to_string(),
        text,
    };
    let rules = parse_rules(file, text)?;
    let document = text.parse().map_err(|error: toml_edit::TomlError| {
        at.error(&error.span().unwrap_or(0..0), error.message().trim_end())
    })?;
    Ok((at, document, rules))
}

/// `rule` as the file writes it, keys in the documented order; defaults are left out.
fn rule_table(rule: &RuleSpec) -> Result<toml_edit::Table, SaveError> {
    let mut table = toml_edit::Table::new();
    table.insert("name", toml_edit::value(rule.name.as_str()));
    let (key, value) = match &rule.target {
        RuleTarget::Tree(_) => return Err(SaveError::Tree(rule.name.clone())),
        RuleTarget::Exe(path) => {
            let shown = || SaveError::NotUtf8(rule.name.clone(), path.display().to_string());
            ("exe", toml_edit::value(path.to_str().ok_or_else(shown)?))
        }
        RuleTarget::Name(name) => ("process_name", toml_edit::value(name.as_str())),
        RuleTarget::Unit(unit) => ("unit", toml_edit::value(unit.as_str())),
        RuleTarget::Container(container) => ("container", toml_edit::value(container.as_str())),
        RuleTarget::CgroupPath(path) => ("cgroup_path", toml_edit::value(path.as_str())),
        RuleTarget::User(UserSpec::Name(name)) => ("user", toml_edit::value(name.as_str())),
        RuleTarget::User(UserSpec::Uid(uid)) => ("user", toml_edit::value(i64::from(*uid))),
    };
    table.insert(key, value);
    for (direction, limit) in rule.limits.iter() {
        let Some(limit) = limit else { continue };
        let [rate_key, burst_key, backend_key] = match direction {
            Direction::Up => ["up", "burst_up", "upload_backend"],
            Direction::Down => ["down", "burst_down", "download_backend"],
        };
        let rate = limit.rate.bytes_per_sec();
        let read_rate = |text: &str| text.parse().ok().map(Rate::bytes_per_sec);
        table.insert(rate_key, toml_edit::value(exact_text(rate, read_rate)));
        if let Some(burst) = limit.burst {
            let read_size = |text: &str| text.parse().ok().map(Size::bytes);
            let text = exact_text(burst.bytes(), read_size);
            table.insert(burst_key, toml_edit::value(text));
        }
        if let Some(backend) = limit.backend {
            table.insert(backend_key, toml_edit::value(backend.name()));
        }
    }
    if rule.mode != Mode::default() {
        table.insert("mode", toml_edit::value(rule.mode.name()));
    }
    if !rule.enabled {
        table.insert("enabled", toml_edit::value(false));
    }
    Ok(table)
}

/// `5MB` when that reads back as exactly `value` through `read`, else the plain number
/// of bytes (`format_bytes` rounds to two decimals).
fn exact_text(value: u64, read: impl Fn(&str) -> Option<u64>) -> String {
    let short = format_bytes(value);
    if read(&short) == Some(value) {
        short
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const FILE: &str = "/etc/chadthrottle/rules.toml";

    fn rules(text: &str) -> Vec<RuleSpec> {
        parse_rules(Path::new(FILE), text).unwrap_or_else(|error| panic!("{error}"))
    }

    /// The error for `text`, as `LINE:COL: message`.
    fn refusal(text: &str) -> String {
        match parse_rules(Path::new(FILE), text) {
            Ok(rules) => panic!("accepted: {rules:?}"),
            Err(error) => {
                let shown = error.to_string();
                let prefix = format!("{FILE}:");
                assert!(shown.starts_with(&prefix), "{shown}");
                assert!(!shown.contains('\n'), "one line: {shown}");
                shown[prefix.len()..].to_owned()
            }
        }
    }

    #[test]
    fn an_error_found_later_points_at_the_rule_target() {
        let text = "# rules\n[[rule]]\nname = \"a\"\nup = \"1M\"\nexe = \"/bin/a\"\n\n[[rule]]\nname = \"b\"\n  user = \"bob\"\nup = \"1M\"\n";
        rules(text);
        let file = Path::new(FILE);
        assert_eq!(
            rule_error(file, text, 0, "nope").to_string(),
            format!("{FILE}:5:7: nope")
        );
        assert_eq!(
            rule_error(file, text, 1, "no such user").to_string(),
            format!("{FILE}:9:10: no such user")
        );
        // a rule the text does not hold: the file's start
        assert_eq!(
            rule_error(file, text, 2, "gone").to_string(),
            format!("{FILE}:1:1: gone")
        );
    }

    #[test]
    fn saved_names_read_as_the_file_takes_them_and_are_unique() {
        let user = |text: &str| parse_user(text).unwrap_or_else(|error| panic!("{error}"));
        let cases = [
            (RuleTarget::Exe("/usr/bin/steam".into()), "exe-steam"),
            (RuleTarget::Name("kworker/0:1".into()), "name-kworker-0-1"),
            (
                RuleTarget::Unit("syncthing.service".into()),
                "unit-syncthing.service",
            ),
            (RuleTarget::Container("web".into()), "container-web"),
            (
                RuleTarget::CgroupPath("/system.slice/x.scope".into()),
                "cgroup-path-system.slice-x.scope",
            ),
            (RuleTarget::CgroupPath("/".into()), "cgroup-path-root"),
            (user("alice"), "user-alice"),
            (user("1000"), "user-1000"),
        ];
        for (target, expected) in cases {
            let name = file_rule_name(&target, &[]);
            assert_eq!(name, expected);
            assert_eq!(parse_rule_name(&name).as_deref(), Ok(expected));
        }
        let steam = RuleTarget::Exe("/usr/bin/steam".into());
        assert_eq!(file_rule_name(&steam, &["exe-steam"]), "exe-steam-2");
        assert_eq!(
            file_rule_name(&steam, &["exe-steam", "exe-steam-2"]),
            "exe-steam-3"
        );
        let long = RuleTarget::Exe(format!("/opt/{}", "x".repeat(100)).into());
        let first = file_rule_name(&long, &[]);
        assert_eq!(first.len(), RULE_NAME_MAX);
        let second = file_rule_name(&long, &[first.as_str()]);
        assert_eq!(second.len(), RULE_NAME_MAX);
        assert!(second.ends_with("-2"), "{second}");
        assert!(parse_rule_name(&second).is_ok());
    }

    fn rate(text: &str) -> Rate {
        text.parse().unwrap_or_else(|error| panic!("{error}"))
    }

    fn limit(text: &str) -> Option<RuleLimit> {
        Some(RuleLimit {
            rate: rate(text),
            burst: None,
            backend: None,
        })
    }

    const EXAMPLE: &str = r#"# Rules applied by `chadthrottle apply`.

[[rule]]
name = "steam"
exe = "/usr/bin/steam"
down = "5M"
up = "1M"

[[rule]]
name = "backup"          # nightly
unit = "restic-backup.service"
up = "500K"
burst = "1M"
burst_down = "2M"
down = "8mbit"
mode = "each"
upload_backend = "policer"
download_backend = "shaping"
enabled = false

[[rule]]
name = "builds"
user = 1001
down = "0"

[[rule]]
name = "web"
container = "web"
up = "2M"

[[rule]]
name = "fox"
process_name = "firefox"
down = "3M"

[[rule]]
name = "batch"
cgroup_path = "/batch.slice//jobs/"
up = "1M"

[[rule]]
name = "alice"
user = "alice"
up = "1M"
"#;

    #[test]
    fn the_documented_example_reads_in_file_order() {
        let read = rules(EXAMPLE);
        let names: Vec<&str> = read.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["steam", "backup", "builds", "web", "fox", "batch", "alice"]
        );
        for (index, rule) in read.iter().enumerate() {
            assert_eq!(rule.order as usize, index, "{}", rule.name);
        }
        assert_eq!(
            read[0],
            RuleSpec {
                name: "steam".into(),
                target: RuleTarget::Exe(PathBuf::from("/usr/bin/steam")),
                limits: PerDirection {
                    up: limit("1M"),
                    down: limit("5M"),
                },
                mode: Mode::Shared,
                order: 0,
                enabled: true,
            }
        );
        assert_eq!(
            read[1],
            RuleSpec {
                name: "backup".into(),
                target: RuleTarget::Unit("restic-backup.service".into()),
                limits: PerDirection {
                    up: Some(RuleLimit {
                        rate: rate("500K"),
                        burst: Size::new(1 << 20),
                        backend: Some(Enforcement::Policer),
                    }),
                    down: Some(RuleLimit {
                        rate: rate("8mbit"),
                        burst: Size::new(2 << 20),
                        backend: Some(Enforcement::Shaping),
                    }),
                },
                mode: Mode::Each,
                order: 1,
                enabled: false,
            }
        );
        let targets: Vec<String> = read[2..].iter().map(|r| r.target.to_string()).collect();
        assert_eq!(
            targets,
            [
                "user 1001",
                "container web",
                "name firefox",
                "cgroup-path /batch.slice/jobs",
                "user alice"
            ]
        );
        assert_eq!(read[2].limits.down.map(|l| l.rate), Some(Rate::BLOCK));
        assert_eq!(read[2].limits.up, None);
        assert!(rules("").is_empty(), "an empty file has no rules");
        assert!(rules("# nothing yet\n").is_empty());
    }

    #[test]
    fn the_schema_in_the_module_doc_reads() {
        let source = include_str!("rules_file.rs");
        let example: String = source
            .lines()
            .map_while(|line| line.strip_prefix("//!"))
            .skip_while(|line| line.trim() != "```toml")
            .skip(1)
            .take_while(|line| line.trim() != "```")
            .map(|line| format!("{}\n", line.strip_prefix(' ').unwrap_or(line)))
            .collect();
        assert!(example.contains("[[rule]]"), "{example}");
        let read = rules(&example);
        assert_eq!(read.len(), 1);
        assert_eq!(
            read[0].summary(),
            "exe /usr/bin/steam ↓5MB/s burst 1MB policer ↑1MB/s burst 1MB shaping (shared)"
        );
    }

    #[test]
    fn lines_and_columns_count_from_1_in_characters() {
        let text = "ab\n→ cd\n\nx";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 2), (1, 3));
        assert_eq!(line_column(text, 3), (2, 1));
        // "→" is 3 bytes, one character: the space after it is column 2.
        assert_eq!(line_column(text, 6), (2, 2));
        assert_eq!(line_column(text, 10), (3, 1));
        assert_eq!(line_column(text, 11), (4, 1));
        assert_eq!(line_column(text, 99), (4, 2), "past the end: the end");
    }

    #[test]
    fn a_bad_value_is_reported_where_it_is() {
        let rule = "[[rule]]\nname = \"s\"\n";
        for (text, expected) in [
            (
                format!("{rule}exe = \"/usr/bin/steam\"\ndown = \"5X\"\n"),
                "4:8: invalid rate \"5X\": unknown unit \"X\"",
            ),
            (
                format!("{rule}  process_name = \"averyveryverylongname\"\ndown = \"1M\"\n"),
                "3:18: process name \"averyveryverylongname\" is 21 bytes: the kernel keeps 15 (what ps and top show)",
            ),
            (
                format!("{rule}exe = \"steam\"\nup = \"1M\"\n"),
                "3:7: executable \"steam\" is not an absolute path",
            ),
            (
                format!("{rule}exe = \"/bin/s\"\nup = \"1M\"\nburst = \"0\"\n"),
                "5:9: invalid size \"0\"",
            ),
            (
                format!("{rule}exe = \"/bin/s\"\nup = \"1M\"\nmode = \"all\"\n"),
                "5:8: mode \"all\" is not a mode",
            ),
            (
                format!("{rule}user = -3\nup = \"1M\"\n"),
                "3:8: user \"-3\" is not a user name or uid",
            ),
            (
                "[[rule]]\nname = \"no spaces\"\nuser = 3\nup = \"1M\"\n".to_owned(),
                "2:8: rule name \"no spaces\" is not a rule name",
            ),
        ] {
            let message = refusal(&text);
            assert!(message.starts_with(expected), "{message}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_refused_where_they_are() {
        let text = "[[rule]]\nname = \"s\"\nexe = \"/bin/s\"\nup = \"1M\"\nrate = \"1M\"\n";
        let message = refusal(text);
        assert!(
            message.starts_with("5:1: unknown field `rate`, expected one of"),
            "{message}"
        );
        assert!(message.contains("`process_name`"), "{message}");
        let message = refusal("[[rules]]\nname = \"s\"\n");
        assert!(
            message.starts_with("1:3: unknown field `rules`, expected `rule`"),
            "{message}"
        );
        let message = refusal("[[rule]]\nname = \"s\nexe = 1\n");
        assert!(message.starts_with("2:"), "{message}");
        let message = refusal("[[rule]]\nname = \"s\"\nexe = \"/bin/s\"\nup = 1000\n");
        assert!(
            message.starts_with("4:6: invalid type: integer `1000`, expected a string"),
            "{message}"
        );
    }

    #[test]
    fn pids_and_trees_are_refused_with_the_way_to_do_it() {
        for key in ["pid", "tree"] {
            let text = format!("[[rule]]\nname = \"game\"\n{key} = 4242\ndown = \"1M\"\n");
            let message = refusal(&text);
            let expected = format!(
                "3:{}: rule \"game\" has a {key}, and PIDs do not survive a reboot",
                key.len() + 4
            );
            assert!(message.starts_with(&expected), "{message}");
            assert!(
                message.contains("chadthrottle limit --pid PID --tree"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_rule_needs_a_name_one_target_and_a_rate() {
        let message = refusal("[[rule]]\nexe = \"/bin/s\"\nup = \"1M\"\n");
        assert!(message.starts_with("1:1: a rule has no name"), "{message}");
        let message = refusal("[[rule]]\nname = \"s\"\nup = \"1M\"\n");
        assert_eq!(
            message,
            "1:1: rule \"s\" has no target: give one of exe, process_name, unit, container, cgroup_path or user"
        );
        let message = refusal("[[rule]]\nname = \"s\"\nexe = \"/bin/s\"\nuser = 0\nup = \"1M\"\n");
        assert_eq!(
            message,
            "4:8: rule \"s\" has two targets, exe and user: give exactly one"
        );
        let message = refusal("\n[[rule]]\nname = \"s\"\nexe = \"/bin/s\"\nmode = \"each\"\n");
        assert!(
            message.starts_with("2:1: rule \"s\" limits nothing"),
            "{message}"
        );
        let message =
            refusal("[[rule]]\nname = \"s\"\nexe = \"/bin/s\"\nup = \"1M\"\nburst_down = \"1M\"\n");
        assert!(
            message.starts_with("5:14: rule \"s\" sets no down rate"),
            "{message}"
        );
        let message = refusal(
            "[[rule]]\nname = \"s\"\nexe = \"/bin/s\"\nup = \"1M\"\nupload_backend = \"htb\"\n",
        );
        assert_eq!(
            message,
            "5:18: up backend \"htb\" is not one for rules: shaping or policer"
        );
        let message = refusal(
            "[[rule]]\nname = \"s\"\nexe = \"/bin/s\"\ndown = \"1M\"\ndownload_backend = \"nftables\"\n",
        );
        assert_eq!(
            message,
            "5:20: down backend \"nftables\" is not one for rules: shaping or policer, or ifb"
        );
        let held = rules(
            "[[rule]]\nname = \"s\"\nexe = \"/bin/s\"\ndown = \"1M\"\ndownload_backend = \"ifb\"\n",
        );
        assert_eq!(
            held[0].limits.down.and_then(|limit| limit.backend),
            Some(Enforcement::Ifb)
        );
    }

    #[test]
    fn duplicates_name_both_lines() {
        let text = "[[rule]]\nname = \"a\"\nexe = \"/bin/a\"\nup = \"1M\"\n\n[[rule]]\nname = \"a\"\nexe = \"/bin/b\"\nup = \"1M\"\n";
        assert_eq!(
            refusal(text),
            "7:8: rule name \"a\" is already used on line 2: names must be unique"
        );
        let text = "[[rule]]\nname = \"a\"\ncgroup_path = \"/x/\"\nup = \"1M\"\n\n[[rule]]\nname = \"b\"\ncgroup_path = \"/x\"\nup = \"1M\"\n";
        assert_eq!(
            refusal(text),
            "8:15: rule \"b\" targets cgroup-path /x, as rule \"a\" on line 3 does: one rule per target"
        );
        // The same name as a process name and as a unit are two targets.
        let text = "[[rule]]\nname = \"a\"\nprocess_name = \"x.service\"\nup = \"1M\"\n[[rule]]\nname = \"b\"\nunit = \"x.service\"\nup = \"1M\"\n";
        assert_eq!(rules(text).len(), 2);
    }

    fn many(count: usize) -> String {
        (0..count)
            .map(|i| format!("[[rule]]\nname = \"r{i}\"\nuser = {i}\nup = \"1M\"\n"))
            .collect()
    }

    #[test]
    fn at_most_4096_rules() {
        assert_eq!(rules(&many(MAX_RULES)).len(), MAX_RULES);
        let message = refusal(&many(MAX_RULES + 1));
        assert_eq!(
            message,
            format!(
                "{}:1: more than 4096 rules: the kernel holds 4096 at most",
                4 * MAX_RULES + 1
            )
        );
    }

    fn steam(down: &str) -> RuleSpec {
        RuleSpec {
            name: "steam".into(),
            target: RuleTarget::Exe(PathBuf::from("/usr/bin/steam")),
            limits: PerDirection {
                up: None,
                down: limit(down),
            },
            mode: Mode::Shared,
            order: 0,
            enabled: true,
        }
    }

    fn saved(text: &str, rule: &RuleSpec) -> String {
        save_rule(Path::new(FILE), text, rule).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn saving_into_an_empty_file_writes_the_rule() {
        let text = saved("", &steam("5M"));
        assert_eq!(
            text,
            "[[rule]]\nname = \"steam\"\nexe = \"/usr/bin/steam\"\ndown = \"5MB\"\n"
        );
        assert_eq!(rules(&text), [steam("5M")]);
    }

    #[test]
    fn saving_replaces_by_name_and_keeps_the_rest_with_its_comments() {
        let before = "# My limits.\n\n# Games.\n[[rule]]\nname = \"steam\"\nexe = \"/usr/bin/steam\"\ndown = \"5M\"  # evenings\n\n# Work.\n[[rule]]\nname = \"backup\"  # nightly\nunit = \"restic.service\"\nup = \"500K\"\n";
        let after = saved(before, &steam("2M"));
        assert_eq!(
            after,
            "# My limits.\n\n# Games.\n[[rule]]\nname = \"steam\"\nexe = \"/usr/bin/steam\"\ndown = \"2MB\"\n\n# Work.\n[[rule]]\nname = \"backup\"  # nightly\nunit = \"restic.service\"\nup = \"500K\"\n"
        );
        let read = rules(&after);
        assert_eq!(read.len(), 2);
        assert_eq!(read[0], steam("2M"));
        assert_eq!(read[1].name, "backup");
        let mut fox = steam("1M");
        fox.name = "fox".into();
        fox.target = RuleTarget::Name("firefox".into());
        fox.order = 2;
        let appended = saved(&after, &fox);
        assert!(appended.starts_with(&after), "{appended}");
        assert_eq!(rules(&appended)[2], fox);
    }

    #[test]
    fn a_rule_replaced_in_the_middle_stays_there() {
        let rule = |name: &str, user: u32| {
            format!("[[rule]]\nname = \"{name}\"\nuser = {user}\nup = \"1M\"\n")
        };
        let before = format!(
            "{}\n# the middle one\n{}\n{}# the end\n",
            rule("a", 1),
            rule("b", 2),
            rule("c", 3)
        );
        let mut b = rules(&before)[1].clone();
        b.limits.up = limit("2M");
        let after = saved(&before, &b);
        assert_eq!(
            after,
            before.replace("user = 2\nup = \"1M\"", "user = 2\nup = \"2MB\"")
        );
    }

    #[test]
    fn forgetting_takes_the_rule_on_that_target_out_and_keeps_the_rest() {
        let forget = |text: &str, target: &RuleTarget| {
            forget_rule(Path::new(FILE), text, target).unwrap_or_else(|error| panic!("{error}"))
        };
        let before = "# My limits.\n\n# Games.\n[[rule]]\nname = \"steam\"\nexe = \"/usr/bin/steam\"\ndown = \"5M\"\n\n# Work.\n[[rule]]\nname = \"backup\"\nunit = \"restic.service\"\nup = \"500K\"\n";
        let steam = RuleTarget::Exe(PathBuf::from("/usr/bin/steam"));
        let after = forget(before, &steam).expect("steam's rule is in the file");
        assert_eq!(
            after,
            "# My limits.\n\n# Work.\n[[rule]]\nname = \"backup\"\nunit = \"restic.service\"\nup = \"500K\"\n"
        );
        assert_eq!(forget(&after, &steam), None, "no rule on that target");
        let backup = RuleTarget::Unit("restic.service".into());
        let empty = forget(&after, &backup).expect("backup's rule");
        assert_eq!(empty, "# My limits.\n\n", "the file's header stays");
        assert!(rules(&empty).is_empty(), "{empty}");
        let broken = forget_rule(Path::new(FILE), "[[rule]]\nname = 1\n", &steam);
        assert!(
            broken.is_err(),
            "a file that does not read is not rewritten"
        );
    }

    #[test]
    fn saving_writes_every_field_so_that_it_reads_back() {
        let rule = RuleSpec {
            name: "all".into(),
            target: RuleTarget::User(UserSpec::Uid(1000)),
            limits: PerDirection {
                // 1 000 000 B/s prints as 976.56KB/s: written as bytes to stay exact.
                up: Some(RuleLimit {
                    rate: rate("1000000"),
                    burst: Size::new(100_000),
                    backend: Some(Enforcement::Policer),
                }),
                down: Some(RuleLimit {
                    rate: Rate::BLOCK,
                    burst: None,
                    backend: Some(Enforcement::Shaping),
                }),
            },
            mode: Mode::Each,
            order: 0,
            enabled: false,
        };
        let text = saved("", &rule);
        assert_eq!(
            text,
            "[[rule]]\nname = \"all\"\nuser = 1000\nup = \"1000000\"\nburst_up = \"100000\"\nupload_backend = \"policer\"\ndown = \"0B\"\ndownload_backend = \"shaping\"\nmode = \"each\"\nenabled = false\n"
        );
        assert_eq!(rules(&text), [rule]);
    }

    #[test]
    fn saving_refuses_trees_broken_files_and_clashes() {
        let mut tree = steam("1M");
        tree.target = RuleTarget::Tree(4242);
        assert_eq!(
            save_rule(Path::new(FILE), "", &tree),
            Err(SaveError::Tree("steam".into()))
        );
        let full = many(MAX_RULES);
        for (before, expected) in [
            (
                "[[rule]]\nname = \"x\"\nexe = \"/bin/x\"\nup = \"1M\"\nspeed = 3\n",
                "5:1: unknown field `speed`",
            ),
            ("[[rule]\n", "1:"),
            ("rule = 3\n", "1:8: invalid type: integer `3`"),
            (
                "rule = []\n",
                "1:1: \"rule\" is not a list of [[rule]] tables",
            ),
        ] {
            let error = save_rule(Path::new(FILE), before, &steam("1M"))
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(&format!("{FILE}:{expected}")), "{error}");
        }
        // Another rule has this target, or the file is full: it is not written.
        let valve = "[[rule]]\nname = \"valve\"\nexe = \"/usr/bin/steam\"\nup = \"1M\"\n";
        for (before, expected) in [
            (
                valve,
                "rule \"steam\" targets exe /usr/bin/steam, as rule \"valve\" on line 3 does: one rule per target",
            ),
            (
                full.as_str(),
                "more than 4096 rules: the kernel holds 4096 at most",
            ),
        ] {
            let error = save_rule(Path::new(FILE), before, &steam("1M")).map(|_| ());
            let expected =
                format!("saving rule \"steam\" would make the rules file invalid: {expected}");
            assert_eq!(error.map_err(|e| e.to_string()), Err(expected));
        }
    }
}
