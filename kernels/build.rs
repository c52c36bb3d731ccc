//! Compiles the CUDA arithmetic with the host C++ compiler (`cuda/host/shim.cpp`), so the
//! device code is tested against blstrs on machines without a GPU.

fn main() {
    println!("cargo:rerun-if-changed=cuda");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .file("cuda/host/shim.cpp")
        .compile("dualchain_kernels_host");
}
