//! Compiles the datapath's pure arithmetic for the host (see `bpf/host/`) so tests can
//! check the C: the bucket against the Rust model, the share division on simulated sockets. The BPF object itself is committed:
//! this needs only the system's C compiler, never clang.

fn main() {
    println!("cargo::rerun-if-changed=bpf/include");
    println!("cargo::rerun-if-changed=bpf/host");
    cc::Build::new()
        .file("bpf/host/bucket_shim.c")
        .file("bpf/host/share_shim.c")
        .file("bpf/host/match_shim.c")
        .include("bpf/include")
        .warnings(true)
        .compile("chadthrottle_bucket_shim");
}
