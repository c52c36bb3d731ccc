//! Typed errors of the GPU runtime. A GPU failure is always one of these, never a panic:
//! callers fall back to the CPU and log the reason.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum KernelError {
    /// No CUDA driver library (`libcuda.so`) could be loaded on this machine.
    #[error("no CUDA driver: libcuda could not be loaded (no NVIDIA driver installed?)")]
    NoDriver,
    /// No NVRTC library (`libnvrtc.so`) could be loaded, so kernels cannot be compiled.
    #[error("no NVRTC: libnvrtc could not be loaded (install the CUDA toolkit or the nvidia-cuda-nvrtc wheel and put its lib directory on LD_LIBRARY_PATH)")]
    NoNvrtc,
    /// The driver loaded but reports no usable device at this ordinal.
    #[error("no CUDA device {ordinal}: {reason}")]
    NoDevice { ordinal: usize, reason: String },
    /// The device is older than the kernels support.
    #[error("CUDA device {name} has compute capability {major}.{minor}: {reason}")]
    Unsupported { name: String, major: i32, minor: i32, reason: String },
    /// The device gave an answer that differs from the CPU's on the known-answer test run
    /// when it is opened (`guard::self_test`).
    #[error("the GPU failed its self-test: {0}; it is not used")]
    SelfTest(String),
    /// NVRTC refused a kernel source; `log` is the compiler's log.
    #[error("NVRTC could not compile {unit} for {arch}: {log}")]
    Compile { unit: String, arch: String, log: String },
    /// A driver call failed (launch, copy, allocation, module load).
    #[error("CUDA driver error during {during}: {reason}")]
    Driver { during: &'static str, reason: String },
    /// The job does not fit the device's memory even after splitting.
    #[error("GPU memory: {needed} bytes needed, {free} free")]
    OutOfMemory { needed: usize, free: usize },
    /// The on-disk module cache could not be read or written.
    #[error("kernel cache {path}: {source}")]
    Cache { path: String, source: std::io::Error },
    /// The device's scheduler did not grant it in time (queue full or deadline passed):
    /// the caller computes on the CPU.
    #[error("GPU busy: a {class} job waited {waited_ms} ms ({why})")]
    Busy { class: &'static str, waited_ms: u64, why: &'static str },
    /// A caller passed inconsistent input (mismatched lengths, a non power of two).
    #[error("invalid kernel input: {0}")]
    Input(String),
}

impl KernelError {
    pub(crate) fn driver(during: &'static str) -> impl Fn(cudarc::driver::DriverError) -> Self + Copy {
        move |e| KernelError::Driver { during, reason: format!("{e:?}") }
    }
}

pub type Result<T> = std::result::Result<T, KernelError>;
