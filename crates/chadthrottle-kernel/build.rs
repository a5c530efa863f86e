//! Compiles the datapath's bucket arithmetic for the host (see `bpf/host/bucket_shim.c`)
//! so tests can check the C against the Rust model. The BPF object itself is committed:
//! this needs only the system's C compiler, never clang.

fn main() {
    println!("cargo::rerun-if-changed=bpf/include");
    println!("cargo::rerun-if-changed=bpf/host");
    cc::Build::new()
        .file("bpf/host/bucket_shim.c")
        .include("bpf/include")
        .warnings(true)
        .compile("chadthrottle_bucket_shim");
}
