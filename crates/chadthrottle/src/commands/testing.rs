//! What the commands' tests share: a fake machine with a few processes, and running a
//! command line on it as `main` would, output and error text captured.

use crate::cli::Cli;
use chadthrottle_core::cgroup_names::ContainerRecord;
use chadthrottle_core::fake::{FakeMachine, FakeProcess, FakeSystem};
use clap::Parser as _;

/// PID of the fake `curl` every test machine runs.
pub const CURL: u32 = 4242;
/// PID of the fake `wget`.
pub const WGET: u32 = 4343;

/// A machine that runs `curl` (3 open sockets) and `wget`, with a thread of `curl` and a
/// kernel thread, nothing installed.
pub fn machine() -> FakeSystem {
    let system = FakeSystem::new(FakeMachine::default());
    {
        let mut machine = system.machine();
        machine.spawn(FakeProcess::new(CURL, 100, "curl"));
        machine.spawn(FakeProcess::new(WGET, 200, "wget"));
        let mut thread = FakeProcess::new(CURL + 1, 100, "curl");
        thread.info.tgid = CURL;
        machine.spawn(thread);
        let mut kernel = FakeProcess::new(2, 1, "kthreadd");
        kernel.info.kernel_thread = true;
        kernel.exe = None;
        machine.spawn(kernel);
        machine.sockets.insert(CURL, 3);
    }
    system
}

/// PID of alice's `steam` (`/usr/bin/steam`), which started [`HELPER`].
pub const STEAM: u32 = 5000;
/// PID of `steamwebhelper` (`/opt/steam/helper`), alice's, a child of [`STEAM`].
pub const HELPER: u32 = 5001;
/// PID of `syncthing`, in `syncthing.service`.
pub const SYNCTHING: u32 = 5100;
/// PID of `nginx`, in the docker container `web`.
pub const NGINX: u32 = 5200;
/// The id of the container `web`.
pub const WEB_ID: &str = "3f4e8a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789ab";

/// [`machine`] with what rules match on: alice (uid 1000) runs `steam` and its helper, a
/// unit and a container run a process each; `/opt/steam` exists.
pub fn rules_machine() -> FakeSystem {
    let system = machine();
    {
        let mut machine = system.machine();
        machine.users.insert(1000, "alice".into());
        machine.spawn(FakeProcess::new(STEAM, 10, "steam").owned_by(1000));
        machine.spawn(
            FakeProcess::new(HELPER, 11, "steamwebhelper")
                .owned_by(1000)
                .child_of(STEAM)
                .running("/opt/steam/helper"),
        );
        machine.spawn(
            FakeProcess::new(SYNCTHING, 12, "syncthing")
                .in_cgroup("/system.slice/syncthing.service"),
        );
        machine.spawn(
            FakeProcess::new(NGINX, 13, "nginx")
                .in_cgroup(&format!("/system.slice/docker-{WEB_ID}.scope")),
        );
        machine
            .containers
            .push(ContainerRecord::new(WEB_ID, vec!["web".into()]));
        machine.directories.insert("/opt/steam".into());
        machine.sockets.insert(STEAM, 2);
    }
    system
}

/// Gives `system`'s usage source three readings, a second apart, of `processes`
/// (`(pid, name, bytes per second)`) and makes every process start when the readings say
/// (clock tick 1).
pub fn with_readings(system: &FakeSystem, processes: &[(u32, String, u64)]) {
    let mut machine = system.machine();
    machine.readings = (0..3)
        .map(|second| chadthrottle_tui::fixtures::reading(processes, second))
        .collect();
    machine
        .processes
        .values_mut()
        .for_each(|p| p.info.start_time = 1);
}

/// Runs `chadthrottle args…` on `system`: what it printed, and the one-line error `main`
/// would print (without the `chadthrottle: ` prefix), if it failed.
pub fn run(system: &mut FakeSystem, args: &[&str]) -> (String, Result<(), String>) {
    let cli = Cli::try_parse_from(std::iter::once("chadthrottle").chain(args.iter().copied()))
        .unwrap_or_else(|error| panic!("{args:?} does not parse: {error}"));
    let mut out = Vec::new();
    let result = super::run(&cli, system, &mut out)
        .map_err(|error| chadthrottle_kernel::describe(error.as_ref()));
    (String::from_utf8_lossy(&out).into_owned(), result)
}

/// Like [`run`], failing the test if the command fails; returns what it printed.
pub fn ok(system: &mut FakeSystem, args: &[&str]) -> String {
    let (out, result) = run(system, args);
    if let Err(error) = result {
        panic!("{args:?} failed: {error}");
    }
    out
}

/// The rules `rules --json` lists on `system`, failing the test if it fails.
pub fn rules_json(system: &mut FakeSystem) -> Vec<serde_json::Value> {
    let json: serde_json::Value =
        serde_json::from_str(&ok(system, &["rules", "--json"])).expect("JSON");
    json["rules"].as_array().expect("rules").clone()
}

/// Like [`run`], failing the test if the command succeeds; returns its error.
pub fn refused(system: &mut FakeSystem, args: &[&str]) -> String {
    match run(system, args) {
        (out, Ok(())) => panic!("{args:?} succeeded: {out}"),
        (_, Err(error)) => error,
    }
}
