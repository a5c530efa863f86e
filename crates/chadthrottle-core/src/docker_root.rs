//! Where a docker daemon keeps its containers: its data root, as dockerd itself settles it
//! — the `--data-root` flag it was started with (`-g`/`--graph` before docker 17.05),
//! else `"data-root"` (`"graph"`) in the daemon.json it reads (`--config-file`, else
//! /etc/docker/daemon.json), else /var/lib/docker.
//!
//! Everything here takes command lines and file contents as strings; reading them (a
//! running dockerd's /proc/PID/cmdline, its daemon.json) is the caller's.

use crate::cgroup_names::CgroupError;

/// dockerd's data root when neither a flag nor its daemon.json names one.
pub const DOCKER_DEFAULT_DATA_ROOT: &str = "/var/lib/docker";

/// The daemon.json a dockerd reads when no `--config-file` names another.
pub const DOCKER_DEFAULT_CONFIG: &str = "/etc/docker/daemon.json";

/// The directory of a data root that holds one `ID/config.v2.json` per container.
pub const DOCKER_CONTAINERS_DIR: &str = "containers";

/// dockerd's one-letter flags that take a value (`-H unix://…`, `-g DIR`, …): in a
/// cluster such as `-Dg DIR` the first of them takes the rest of the word or the next one.
const SHORT_WITH_VALUE: &[char] = &['H', 'G', 'b', 'p', 's', 'l', 'g'];

/// The flags on a dockerd's command line that say where its data is.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DockerdFlags {
    /// `--data-root DIR` (or the older `-g`/`--graph`).
    pub data_root: Option<String>,
    /// `--config-file FILE`.
    pub config_file: Option<String>,
}

/// The placing flags of a dockerd run with `args` (its program name first, as
/// /proc/PID/cmdline lists them), in every form its flag parser takes: `--data-root DIR`,
/// `--data-root=DIR`, `-g DIR`, `-gDIR`, `-g=DIR`, `-Dg DIR`; the last given wins, as in
/// dockerd; nothing after `--` is a flag.
pub fn dockerd_flags<S: AsRef<str>>(args: &[S]) -> DockerdFlags {
    let mut flags = DockerdFlags::default();
    let mut words = args.iter().map(AsRef::as_ref).skip(1);
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        let (name, inline) = if let Some(long) = word.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            }
        } else if let Some(cluster) = word.strip_prefix('-') {
            // the first letter that takes a value ends the cluster
            let Some((at, letter)) = cluster
                .char_indices()
                .find(|(_, letter)| SHORT_WITH_VALUE.contains(letter))
            else {
                continue;
            };
            let rest = &cluster[at + letter.len_utf8()..];
            let value = rest.strip_prefix('=').unwrap_or(rest);
            let inline = (!value.is_empty()).then_some(value);
            (if letter == 'g' { "graph" } else { "" }, inline)
        } else {
            continue;
        };
        let slot = match name {
            "data-root" | "graph" => &mut flags.data_root,
            "config-file" => &mut flags.config_file,
            _ => continue,
        };
        let value = match inline {
            Some(value) => Some(value),
            None => words.next(),
        };
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            *slot = Some(value.to_owned());
        }
    }
    flags
}

/// The data root of a dockerd started with `flags`: the flag's, else that of its
/// daemon.json `config` (the file's name and text, `None` when there is no such file),
/// else [`DOCKER_DEFAULT_DATA_ROOT`]. A daemon.json that is not a JSON object is an
/// error naming the file (dockerd itself would not start with it).
pub fn docker_data_root(
    flags: &DockerdFlags,
    config: Option<(&str, &str)>,
) -> Result<String, CgroupError> {
    if let Some(root) = &flags.data_root {
        return Ok(root.clone());
    }
    let from_file = match config {
        Some((file, text)) => daemon_json_data_root(file, text)?,
        None => None,
    };
    Ok(from_file.unwrap_or_else(|| DOCKER_DEFAULT_DATA_ROOT.to_owned()))
}

/// `"data-root"` (else the older `"graph"`) in a daemon.json's `text`; `None` when
/// neither is set. A file with only whitespace is the empty configuration, as for dockerd.
fn daemon_json_data_root(file: &str, text: &str) -> Result<Option<String>, CgroupError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let problem = |problem: String| CgroupError::DaemonJson {
        file: file.to_owned(),
        problem,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| problem(error.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| problem("not a JSON object".to_owned()))?;
    for key in ["data-root", "graph"] {
        match object.get(key) {
            None => {}
            Some(serde_json::Value::String(root)) if root.is_empty() => {}
            Some(serde_json::Value::String(root)) => return Ok(Some(root.clone())),
            Some(other) => return Err(problem(format!("\"{key}\" is {other}, not a path"))),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(line: &str) -> DockerdFlags {
        let args: Vec<&str> = line.split(' ').collect();
        dockerd_flags(&args)
    }

    fn root(path: &str) -> DockerdFlags {
        DockerdFlags {
            data_root: Some(path.to_owned()),
            config_file: None,
        }
    }

    #[test]
    fn the_data_root_flag_is_read_in_every_form() {
        for line in [
            "dockerd --data-root /srv/docker",
            "dockerd --data-root=/srv/docker",
            "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock --data-root /srv/docker",
            "dockerd -g /srv/docker",
            "dockerd -g/srv/docker",
            "dockerd -g=/srv/docker",
            "dockerd --graph /srv/docker",
            "dockerd -Dg /srv/docker",
            "dockerd --data-root /old --data-root /srv/docker",
        ] {
            assert_eq!(flags(line), root("/srv/docker"), "{line}");
        }
    }

    /// The command line of the dockerd the container test starts (docker.io 20.10.24):
    /// its data root and daemon.json in a directory of its own.
    #[test]
    fn a_confined_dockerds_command_line_gives_its_own_places() {
        let line = "/usr/sbin/dockerd --iptables=false --ip6tables=false --bridge=none \
            --containerd /tmp/ct-test-25620-0-docker-docker/containerd/containerd.sock \
            --data-root /tmp/ct-test-25620-0-docker-docker/data \
            --exec-root /tmp/ct-test-25620-0-docker-docker/exec \
            --pidfile /tmp/ct-test-25620-0-docker-docker/docker.pid \
            -H unix:///tmp/ct-test-25620-0-docker-docker/docker.sock \
            --exec-opt native.cgroupdriver=cgroupfs --storage-driver vfs \
            --config-file /tmp/ct-test-25620-0-docker-docker/daemon.json";
        let args: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            dockerd_flags(&args),
            DockerdFlags {
                data_root: Some("/tmp/ct-test-25620-0-docker-docker/data".into()),
                config_file: Some("/tmp/ct-test-25620-0-docker-docker/daemon.json".into()),
            }
        );
    }

    #[test]
    fn other_flags_and_their_values_are_not_taken_for_the_data_root() {
        for line in [
            "dockerd",
            "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
            // `-H` takes the rest of its cluster: `g` is its value, not the flag
            "dockerd -Hg",
            "dockerd --exec-root /run/other-docker -p /run/other.pid",
            "dockerd -- --data-root /not-a-flag",
            "dockerd --data-root=",
            "dockerd --graphdriver /x",
        ] {
            assert_eq!(flags(line).data_root, None, "{line}");
        }
        assert_eq!(
            flags("dockerd --config-file=/etc/docker/other.json").config_file,
            Some("/etc/docker/other.json".into())
        );
        assert_eq!(
            flags("dockerd --config-file /c.json").config_file,
            Some("/c.json".into())
        );
    }

    #[test]
    fn the_flag_wins_then_the_daemon_json_then_the_default() {
        let json = Some((
            "/etc/docker/daemon.json",
            r#"{"data-root": "/mnt/docker", "log-level": "warn"}"#,
        ));
        assert_eq!(
            docker_data_root(&root("/srv/docker"), json).as_deref(),
            Ok("/srv/docker")
        );
        let none = DockerdFlags::default();
        assert_eq!(docker_data_root(&none, json).as_deref(), Ok("/mnt/docker"));
        let graph = Some(("daemon.json", r#"{"graph": "/old/docker"}"#));
        assert_eq!(docker_data_root(&none, graph).as_deref(), Ok("/old/docker"));
        for defaulted in [
            None,
            Some(("daemon.json", "")),
            Some(("daemon.json", " \n")),
            Some(("daemon.json", "{}")),
            Some(("daemon.json", r#"{"data-root": ""}"#)),
            Some(("daemon.json", r#"{"storage-driver": "overlay2"}"#)),
        ] {
            assert_eq!(
                docker_data_root(&none, defaulted).as_deref(),
                Ok(DOCKER_DEFAULT_DATA_ROOT),
                "{defaulted:?}"
            );
        }
    }

    #[test]
    fn a_daemon_json_dockerd_would_refuse_is_named_in_the_error() {
        let none = DockerdFlags::default();
        for (text, problem) in [
            ("{\"data-root\": ", "EOF"),
            ("[\"/srv/docker\"]", "not a JSON object"),
            ("{\"data-root\": 7}", "\"data-root\" is 7, not a path"),
        ] {
            let message = docker_data_root(&none, Some(("/etc/docker/daemon.json", text)))
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(
                message.starts_with("/etc/docker/daemon.json: not a daemon.json docker reads: "),
                "{message}"
            );
            assert!(message.contains(problem), "{message}");
        }
        // a data root given by flag does not need the file
        assert_eq!(
            docker_data_root(&root("/srv/docker"), Some(("daemon.json", "{"))).as_deref(),
            Ok("/srv/docker")
        );
    }
}
