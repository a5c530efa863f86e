//! The command line end to end, on any machine and as any user: what is refused before
//! anything is touched (bad values, options that do not go together, processes that
//! cannot be limited), with its one-line message and exit code. Nothing here needs root
//! or a kernel feature; every command that would reach the datapath is pointed at a pin
//! directory of the test's own, which it never gets to create.

use assert_cmd::Command;
use std::path::PathBuf;

/// `chadthrottle` with the datapath options pointed away from the machine's defaults.
fn chadthrottle() -> (Command, PathBuf) {
    let pin_dir = std::env::temp_dir().join(format!("ct-cli-test-{}", std::process::id()));
    let mut command = Command::cargo_bin("chadthrottle").expect("the binary is built");
    command
        .env("CHADTHROTTLE_PIN_DIR", &pin_dir)
        .env_remove("CHADTHROTTLE_CGROUP")
        .env_remove("CHADTHROTTLE_UPLOAD_BACKEND")
        .env_remove("CHADTHROTTLE_DOWNLOAD_BACKEND")
        .env_remove("CHADTHROTTLE_FAILPOINT");
    (command, pin_dir)
}

/// Runs `chadthrottle args`, checks it exits `code` with one line on stderr containing
/// `expected`, that it printed nothing else, and that it created no pin directory.
fn refused(args: &[&str], code: i32, expected: &str) {
    let (mut command, pin_dir) = chadthrottle();
    let output = command.args(args).output().expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "{args:?} exited {:?}: {stderr}",
        output.status.code()
    );
    assert_eq!(stderr.lines().count(), 1, "{args:?} said: {stderr}");
    assert!(
        stderr.starts_with("chadthrottle: ") && stderr.contains(expected),
        "{args:?} said: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "{args:?} printed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(!pin_dir.exists(), "{args:?} created {}", pin_dir.display());
}

/// A PID no process has now.
fn free_pid() -> String {
    (4_000_000..4_100_000)
        .find(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        .unwrap_or(4_194_303)
        .to_string()
}

#[test]
fn bad_values_exit_2_naming_the_value() {
    let pid = std::process::id().to_string();
    let limit = |extra: &[&'static str]| {
        let mut args = vec!["limit", "--pid", "1"];
        args.extend_from_slice(extra);
        args
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (limit(&["--up", "-1M"]), "invalid rate \"-1M\""),
        (limit(&["--up", "1.2.3M"]), "invalid rate \"1.2.3M\""),
        (limit(&["--down", "5X"]), "invalid rate \"5X\""),
        (
            limit(&["--down", "99999999999999999999G"]),
            "above the maximum",
        ),
        (limit(&["--up", "1M", "--burst", "0"]), "invalid size \"0\""),
        (
            limit(&["--up", "1M", "--for", "soon"]),
            "invalid duration \"soon\"",
        ),
        (
            vec!["--pid", &pid, "--upload-limit", "fast"],
            "invalid rate \"fast\"",
        ),
        (
            vec!["--pid", &pid, "--upload-limit", "1M", "--duration", "-5"],
            "invalid duration \"-5\"",
        ),
        (vec!["top", "--interval", "now"], "invalid duration \"now\""),
        (vec!["--max-limits", "0", "status"], "0"),
        (vec!["--max-connections", "10", "status"], "10"),
        (vec!["top", "--count", "0"], "0"),
        (
            vec!["top", "--by", "user"],
            "invalid grouping \"user\": give process or app",
        ),
        (
            vec!["run", "--up", "fast", "--", "true"],
            "invalid rate \"fast\"",
        ),
        (
            vec!["run", "--down", "1M", "--for", "never", "--", "true"],
            "invalid duration \"never\"",
        ),
    ];
    for (args, expected) in cases {
        refused(&args, 2, expected);
    }
}

#[test]
fn options_that_do_not_go_together_exit_2() {
    for tui_only in [
        ["--no-restore", "status"],
        ["--rules-file=/tmp/rules.toml", "rules"],
    ] {
        refused(
            &tui_only,
            2,
            "--restore, --no-restore and --rules-file are for the TUI: give them without a \
             command (`apply FILE` and `limit --save FILE` name their file)",
        );
    }
    refused(
        &["--config=/tmp/config.toml", "usage"],
        2,
        "--config before a command is the TUI's: give it after `daemon` or `usage`",
    );
    refused(
        &["--list-backends", "status"],
        2,
        "--pid and --list-backends are the upstream form: give them without a command",
    );
    refused(
        &["--pid", "1", "--upload-limit", "1M", "status"],
        2,
        "--pid and --list-backends are the upstream form",
    );
}

#[test]
fn missing_or_unknown_arguments_are_clap_errors_with_usage() {
    for args in [
        vec!["limit", "--pid", "1"],  // neither --up nor --down
        vec!["limit", "--up", "1M"],  // no --pid
        vec!["--pid", "1"],           // the upstream form without a limit
        vec!["--upload-limit", "1M"], // a limit without --pid
        vec!["throttle"],             // no such command
        vec!["unlimit", "--pid", "1", "--sideways"],
        vec!["run", "--up", "1M"],         // no command
        vec!["run", "--", "true"],         // neither --up nor --down
        vec!["run", "--up", "1M", "true"], // the command without --
    ] {
        let (mut command, pin_dir) = chadthrottle();
        let output = command.args(&args).output().expect("runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("Usage:"), "{args:?} said: {stderr}");
        assert!(!pin_dir.exists());
    }
}

#[test]
fn processes_that_cannot_be_limited_exit_1_before_anything_is_installed() {
    let free = free_pid();
    refused(
        &["limit", "--pid", &free, "--up", "1M"],
        1,
        &format!("no process with PID {free}"),
    );
    // a thread of this test process, alive while it is refused
    let me = std::process::id();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (tell, tid) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        let _sent = tell.send(unsafe { libc::gettid() });
        let _ = stopped.recv();
    });
    let tid = tid.recv().expect("the thread's ID").to_string();
    refused(
        &["limit", "--pid", &tid, "--up", "1M"],
        1,
        &format!(
            "PID {tid} is a thread of process {me}: limits apply to whole processes, use --pid {me}"
        ),
    );
    let _ = stop.send(());
    holder.join().expect("thread ends");
    // a kernel thread: kthreadd is PID 2 wherever a kernel runs its own threads
    let kthreadd = std::fs::read_to_string("/proc/2/comm").unwrap_or_default();
    if kthreadd.trim() == "kthreadd" {
        refused(
            &["limit", "--pid", "2", "--up", "1M"],
            1,
            "PID 2 (kthreadd) is a kernel thread",
        );
    } else {
        println!("no kthreadd at PID 2 here (a container?): the kernel-thread case is not run");
    }
}

#[test]
fn help_and_version_exit_0() {
    for args in [vec!["--help"], vec!["limit", "--help"], vec!["--version"]] {
        let (mut command, _) = chadthrottle();
        let output = command.args(&args).output().expect("runs");
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(!output.stdout.is_empty(), "{args:?} printed nothing");
    }
    let (mut command, _) = chadthrottle();
    let output = command.args(["limit", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("RATE is bytes per second"), "{help}");
}

#[test]
fn rule_targets_refused_before_anything_is_touched() {
    let cases: [(&[&str], i32, &str); 12] = [
        (
            &[
                "limit",
                "--pid",
                "1",
                "--exe",
                "/usr/bin/steam",
                "--down",
                "1M",
            ],
            2,
            "the argument '--pid <PID>' cannot be used with '--exe <PATH>'",
        ),
        (
            &["unlimit", "--name", "steam", "--user", "alice"],
            2,
            "the argument '--name <NAME>' cannot be used with '--user <USER>'",
        ),
        (
            &["limit", "--name", "steam", "--tree", "--down", "1M"],
            2,
            "--tree is for --pid: it takes the process and every process it starts",
        ),
        (
            &["limit", "--pid", "1", "--each", "--down", "1M"],
            2,
            "--each gives each process a rule matches its own budget",
        ),
        (
            &["limit", "--pid", "0", "--tree", "--down", "1M"],
            2,
            "tree PID \"0\" is not a process",
        ),
        (
            &["unlimit", "--exe", "/usr/bin/steam", "--up"],
            2,
            "--up and --down lift one direction of a PID's limit; a rule is removed whole",
        ),
        (
            &["limit", "--exe", "", "--down", "1M"],
            2,
            "executable \"\" is not an absolute path",
        ),
        (
            &["limit", "--name", "", "--down", "1M"],
            2,
            "process name \"\" is empty",
        ),
        (
            &["limit", "--exe", "bin/steam", "--down", "1M"],
            2,
            "executable \"bin/steam\" is not an absolute path",
        ),
        (
            &["limit", "--name", "averyveryverylongname", "--down", "1M"],
            2,
            "process name \"averyveryverylongname\" is 21 bytes: the kernel keeps 15",
        ),
        (
            &["limit", "--cgroup-path", "/", "--down", "1M"],
            2,
            "cgroup path \"/\" is the root, the whole machine",
        ),
        (
            &["unlimit", "--unit", "backup.timer"],
            2,
            "unit \"backup.timer\" has no processes of its own",
        ),
    ];
    for (args, code, expected) in cases {
        refused(args, code, expected);
    }
}

#[test]
fn a_rule_for_a_missing_directory_exits_1_before_anything_is_installed() {
    let missing = std::env::temp_dir().join(format!("ct-cli-missing-{}/steam", std::process::id()));
    let missing = missing.to_str().expect("UTF-8").to_owned();
    // as root the directory is looked up; without root the rule is refused first
    let expected = if runs_as_root() {
        "its directory"
    } else {
        "only root may set or remove them"
    };
    refused(&["limit", "--exe", &missing, "--down", "1M"], 1, expected);
    refused(
        &["limit", "--user", "ct-no-such-user", "--down", "1M"],
        1,
        if runs_as_root() {
            "user \"ct-no-such-user\" is not in the user database"
        } else {
            "only root may set or remove them"
        },
    );
}

/// Whether this test runs as root (its real uid, from /proc).
fn runs_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next().map(|real| real == "0"))
        .unwrap_or(false)
}

#[test]
fn save_where_a_rule_cannot_come_back_at_boot_exits_2() {
    let pid = std::process::id().to_string();
    let reboot = "--save: a PID does not survive a reboot";
    for (args, expected) in [
        (
            vec!["limit", "--pid", &pid, "--down", "1M", "--save"],
            reboot,
        ),
        (
            vec![
                "limit",
                "--pid",
                &pid,
                "--tree",
                "--down",
                "1M",
                "--save",
                "/tmp/x.toml",
            ],
            reboot,
        ),
        (
            vec![
                "limit",
                "--exe",
                "/usr/bin/steam",
                "--down",
                "1M",
                "--for",
                "1m",
                "--save",
            ],
            "--save: the rules file holds rules until they are removed: give --save or --for, not both",
        ),
    ] {
        refused(&args, 2, expected);
    }
}

#[test]
fn apply_takes_one_file_and_refuses_a_missing_or_broken_one() {
    for args in [
        vec!["apply", "a.toml", "b.toml"],
        vec!["apply", "--dry-run", "--sideways"],
    ] {
        let (mut command, pin_dir) = chadthrottle();
        let output = command.args(&args).output().expect("runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("Usage:"), "{args:?} said: {stderr}");
        assert!(!pin_dir.exists());
    }
    let directory = std::env::temp_dir().join(format!("ct-cli-apply-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("a directory of the test's own");
    let missing = directory.join("missing.toml");
    let broken = directory.join("broken.toml");
    std::fs::write(
        &broken,
        "[[rule]]\nname = \"a\"\nexe = \"/bin/a\"\ndown = \"fast\"\n",
    )
    .expect("written");
    let not_root = "applying a rules file affects every user of this machine: only root may do it";
    let missing_said = format!("rules file {} does not exist", missing.display());
    let broken_said = format!("{}:4:8: invalid rate \"fast\"", broken.display());
    for (file, as_root) in [(&missing, &missing_said), (&broken, &broken_said)] {
        let expected = if runs_as_root() {
            as_root.as_str()
        } else {
            not_root
        };
        for dry_run in [false, true] {
            let mut args = vec!["apply", file.to_str().expect("UTF-8")];
            if dry_run {
                args.push("--dry-run");
            }
            refused(&args, 1, expected);
        }
    }
    std::fs::remove_dir_all(&directory).expect("removed");
}

#[test]
fn run_is_refused_before_its_command_runs() {
    let marker = std::env::temp_dir().join(format!("ct-cli-run-{}", std::process::id()));
    let touch = ["touch", marker.to_str().expect("UTF-8")];
    if runs_as_root() {
        // the rule's backend is refused: the command, held before it ran, is killed
        let mut args = vec!["--upload-backend", "htb", "run", "--up", "1M", "--"];
        args.extend_from_slice(&touch);
        refused(&args, 1, "backend \"htb\" is unavailable");
    } else {
        let mut args = vec!["run", "--up", "1M", "--"];
        args.extend_from_slice(&touch);
        refused(
            &args,
            1,
            "rule \"run touch\": rules match processes of every user, present and future: \
             only root may set or remove them",
        );
    }
    assert!(!marker.exists(), "the command ran");
}

#[test]
fn completions_for_each_shell_and_an_unknown_shell_refused() {
    for (shell, opening) in [
        ("bash", "_chadthrottle() {"),
        ("zsh", "#compdef chadthrottle"),
        ("fish", "complete -c chadthrottle"),
    ] {
        let (mut command, pin_dir) = chadthrottle();
        let output = command.args(["completions", shell]).output().expect("runs");
        assert_eq!(output.status.code(), Some(0), "{shell}");
        assert!(output.stderr.is_empty(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(script.contains(opening), "{shell}: {script}");
        assert!(!pin_dir.exists());
    }
    for unknown in ["tcsh", "Bash", ""] {
        refused(
            &["completions", unknown],
            2,
            &format!("unknown shell \"{unknown}\"; accepted: bash, zsh, fish"),
        );
    }
}

#[test]
fn man_writes_a_page_per_command_into_a_directory() {
    let dir = std::env::temp_dir().join(format!("ct-cli-man-{}", std::process::id()));
    let (mut command, pin_dir) = chadthrottle();
    let output = command.arg("man").arg(&dir).output().expect("runs");
    let listed = String::from_utf8_lossy(&output.stdout).into_owned();
    let pages = std::fs::read_dir(&dir).map(|entries| entries.count());
    let limit_page = std::fs::read_to_string(dir.join("chadthrottle-limit.1"));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(0), "{listed}");
    assert!(
        listed.lines().any(|line| line.ends_with("/chadthrottle.1")),
        "{listed}"
    );
    assert_eq!(
        pages.expect("the directory was created"),
        listed.lines().count()
    );
    assert!(limit_page.expect("limit's page").contains(r"\-\-exe"));
    assert!(!pin_dir.exists());
}

#[test]
fn daemon_and_usage_refuse_a_broken_configuration_before_anything_starts() {
    let dir = std::env::temp_dir().join(format!("ct-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory of the test's own");
    let config = dir.join("config.toml");
    let database = dir.join("usage.db");
    std::fs::write(
        &config,
        format!(
            "database = \"{}\"\n[metrics]\nlisten = \"nowhere\"\n",
            database.display()
        ),
    )
    .expect("write the configuration");
    let config_arg = config.display().to_string();
    let at = format!("{config_arg}:3:10: listen \"nowhere\"");
    refused(&["daemon", "--config", &config_arg], 1, &at);
    refused(&["usage", "--config", &config_arg], 1, &at);
    refused(&["usage", "--since", "soon"], 1, "invalid --since \"soon\"");
    assert!(!database.exists(), "no database was created");
    std::fs::remove_dir_all(&dir).expect("remove the test's directory");
}
