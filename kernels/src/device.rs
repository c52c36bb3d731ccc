//! One CUDA device: discovery, the compiled kernel modules, the stream work runs on, and
//! launches. All driver access of the crate goes through here.
//!
//! Opening a device never panics: cudarc aborts the process when `libcuda` is missing, so
//! its presence is checked first, and every call that could reach a missing symbol runs
//! under `catch_unwind`. Each failure becomes a [`KernelError`] naming the reason, which
//! the caller logs when it falls back to the CPU.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::{
    sys, CudaContext, CudaFunction, CudaSlice, CudaStream, CudaViewMut, DeviceRepr, LaunchConfig, PinnedHostSlice,
    ValidAsZeroBits,
};
use cudarc::nvrtc::Ptx;

use crate::cache::ModuleCache;
use crate::error::{KernelError, Result};
use crate::scheduler::{Permit, Priority, Scheduler};
use crate::source::UNITS;

/// What a device is, as reported at start-up, in `/health` and in metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    /// The real architecture the kernels are compiled for, e.g. `sm_90`.
    pub arch: String,
    pub memory_bytes: usize,
    pub multiprocessors: i32,
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GPU {} ({}, {}, {} SMs, {:.1} GiB)",
            self.ordinal,
            self.name,
            self.arch,
            self.multiprocessors,
            self.memory_bytes as f64 / (1u64 << 30) as f64
        )
    }
}

/// Whether the CUDA driver library can be loaded on this machine.
pub fn driver_present() -> bool {
    // SAFETY: only attempts to dlopen candidate names of libcuda and drops the handle.
    catch_unwind(|| unsafe { sys::is_culib_present() }).unwrap_or(false)
}

/// Runs a driver call that might reach a missing symbol, turning a panic into an error.
fn guarded<T>(during: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(KernelError::Driver { during, reason: "the CUDA driver library panicked".into() }))
}

/// The number of CUDA devices, or why there are none.
pub fn device_count() -> Result<usize> {
    if !driver_present() {
        return Err(KernelError::NoDriver);
    }
    guarded("device count", || {
        CudaContext::device_count().map(|n| n.max(0) as usize).map_err(KernelError::driver("device count"))
    })
}

/// What one compiled kernel uses of the device ([`Gpu::kernel_resources`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelResources {
    pub name: &'static str,
    pub registers: i32,
    pub local_bytes: i32,
    pub shared_bytes: i32,
}

/// An open device with every kernel unit loaded.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// A second stream for host-to-device copies that overlap kernels on `stream`
    /// (the MSM's scalar chunks); ordered against it by events.
    upload: Arc<CudaStream>,
    info: DeviceInfo,
    functions: HashMap<&'static str, CudaFunction>,
    /// The device's only owner: one job at a time, by priority (jobs size their buffers
    /// from the free memory they see).
    scheduler: Scheduler,
}

/// Jobs that may wait for the device at once; more callers wait for room.
pub const QUEUE_CAPACITY: usize = 64;

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("info", &self.info).finish()
    }
}

impl Gpu {
    /// Opens device `ordinal`, compiling (or loading from `cache`) every kernel unit.
    pub fn open(ordinal: usize, cache: &ModuleCache) -> Result<Arc<Self>> {
        let count = device_count()?;
        if ordinal >= count {
            return Err(KernelError::NoDevice { ordinal, reason: format!("the driver reports {count} device(s)") });
        }
        if !crate::nvrtc::available() {
            return Err(KernelError::NoNvrtc);
        }
        guarded("device open", || {
            let ctx =
                CudaContext::new(ordinal).map_err(|e| KernelError::NoDevice { ordinal, reason: format!("{e:?}") })?;
            let name = ctx.name().map_err(KernelError::driver("device name"))?;
            let (major, minor) = ctx.compute_capability().map_err(KernelError::driver("compute capability"))?;
            let supported = crate::nvrtc::supported_archs()?;
            if let Some(reason) = crate::nvrtc::unsupported(major, minor, &supported) {
                return Err(KernelError::Unsupported { name, major, minor, reason });
            }
            let arch = format!("sm_{major}{minor}");
            let memory_bytes = ctx.total_mem().map_err(KernelError::driver("memory size"))?;
            let multiprocessors = ctx
                .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
                .map_err(KernelError::driver("multiprocessor count"))?;
            let info = DeviceInfo { ordinal, name, arch: arch.clone(), memory_bytes, multiprocessors };
            let mut functions = HashMap::new();
            // NVRTC compiles one unit per thread: a first start waits for the slowest unit
            // (pairing, about half a minute) instead of the sum of all of them.
            let images: Vec<Result<(Vec<u8>, bool)>> = std::thread::scope(|s| {
                let arch = arch.as_str();
                let jobs: Vec<_> = UNITS.iter().map(|unit| s.spawn(move || cache.get_or_compile(unit, arch))).collect();
                jobs.into_iter()
                    .zip(UNITS)
                    .map(|(job, unit)| {
                        job.join().unwrap_or_else(|_| {
                            Err(KernelError::Compile {
                                unit: unit.name.into(),
                                arch: arch.into(),
                                log: "the compiler thread panicked".into(),
                            })
                        })
                    })
                    .collect()
            });
            for (unit, image) in UNITS.iter().zip(images) {
                let (image, cached) = image?;
                tracing::debug!(unit = unit.name, %arch, cached, bytes = image.len(), "kernel module ready");
                let module = match ctx.load_module(Ptx::from_binary(image)) {
                    Ok(m) => m,
                    // A cached image the driver refuses (damaged, or from another driver):
                    // compiled again and the cache entry replaced.
                    Err(e) if cached => {
                        tracing::warn!(unit = unit.name, %arch, error = ?e, "cached kernel module refused by the driver; compiling it again");
                        let image = cache.compile_and_put(unit, &arch)?;
                        ctx.load_module(Ptx::from_binary(image)).map_err(KernelError::driver("module load"))?
                    }
                    Err(e) => return Err(KernelError::driver("module load")(e)),
                };
                for name in unit.kernels {
                    let f = module.load_function(name).map_err(KernelError::driver("kernel lookup"))?;
                    functions.insert(*name, f);
                }
            }
            let stream = ctx.new_stream().map_err(KernelError::driver("stream creation"))?;
            let upload = ctx.new_stream().map_err(KernelError::driver("stream creation"))?;
            Ok(Arc::new(Gpu { ctx, stream, upload, info, functions, scheduler: Scheduler::new(QUEUE_CAPACITY) }))
        })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Per kernel, sorted by name: registers per thread, local memory per thread (bytes;
    /// non-zero means spills) and static shared memory per block (bytes).
    pub fn kernel_resources(&self) -> Result<Vec<KernelResources>> {
        let mut out = Vec::new();
        for (name, f) in &self.functions {
            let attr = |a| {
                guarded("kernel attributes", || f.get_attribute(a).map_err(KernelError::driver("kernel attributes")))
            };
            use sys::CUfunction_attribute_enum as A;
            out.push(KernelResources {
                name,
                registers: attr(A::CU_FUNC_ATTRIBUTE_NUM_REGS)?,
                local_bytes: attr(A::CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES)?,
                shared_bytes: attr(A::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)?,
            });
        }
        out.sort_by_key(|k| k.name);
        Ok(out)
    }

    /// Free and total device memory in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        guarded("memory info", || {
            self.ctx.bind_to_thread().map_err(KernelError::driver("bind context"))?;
            self.ctx.mem_get_info().map_err(KernelError::driver("memory info"))
        })
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Runs one job with the device to itself once the scheduler grants it (by `class`,
    /// within `deadline`), on this thread, turning panics from the driver bindings into
    /// errors and synchronising before it returns.
    pub(crate) fn job<T>(
        &self,
        class: Priority,
        deadline: Duration,
        during: &'static str,
        f: impl FnOnce(&Job<'_>) -> Result<T>,
    ) -> Result<T> {
        let permit = self.scheduler.acquire(class, deadline)?;
        guarded(during, || {
            self.ctx.bind_to_thread().map_err(KernelError::driver("bind context"))?;
            let job = Job { gpu: self, permit };
            let out = f(&job)?;
            self.upload.synchronize().map_err(KernelError::driver("synchronize"))?;
            self.stream.synchronize().map_err(KernelError::driver("synchronize"))?;
            Ok(out)
        })
    }
}

/// The device while one job holds it.
pub(crate) struct Job<'a> {
    gpu: &'a Gpu,
    permit: Permit<'a>,
}

/// Threads per block for element-wise kernels.
pub(crate) const BLOCK: u32 = 256;

pub(crate) fn grid(threads: u64) -> Result<LaunchConfig> {
    let blocks = threads.div_ceil(BLOCK as u64);
    if blocks > u32::MAX as u64 {
        return Err(KernelError::Input(format!("{threads} threads exceed one launch")));
    }
    Ok(LaunchConfig { grid_dim: (blocks.max(1) as u32, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 })
}

impl Job<'_> {
    pub fn gpu(&self) -> &Gpu {
        self.gpu
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.gpu.stream
    }

    /// The stream for copies that overlap the kernels of [`Job::stream`].
    pub fn upload_stream(&self) -> &Arc<CudaStream> {
        &self.gpu.upload
    }

    /// Counts `bytes` moved between host and device by a copy made outside this type.
    pub fn moved(&self, bytes: usize) {
        self.permit.moved(bytes);
    }

    /// Page-locked host memory of `len` elements, zeroed, for copies that run
    /// asynchronously.
    pub fn alloc_pinned<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<PinnedHostSlice<T>> {
        let fail = KernelError::driver("pinned allocation");
        // SAFETY: the memory starts unset, and is zeroed below, through its raw pointer,
        // before any reference to it is made (zero bits are a valid T).
        unsafe {
            let mut p = self.gpu.ctx.alloc_pinned::<T>(len.max(1)).map_err(fail)?;
            let ptr = p.as_mut_ptr().map_err(KernelError::driver("pinned allocation"))?;
            std::ptr::write_bytes(ptr, 0, p.len());
            Ok(p)
        }
    }

    pub fn function(&self, name: &'static str) -> Result<&CudaFunction> {
        self.gpu.functions.get(name).ok_or_else(|| KernelError::Driver {
            during: "kernel lookup",
            reason: format!("kernel {name} is not loaded"),
        })
    }

    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        self.permit.moved(std::mem::size_of_val(host));
        self.stream().clone_htod(host).map_err(KernelError::driver("upload"))
    }

    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>> {
        self.stream().alloc_zeros::<T>(len.max(1)).map_err(|e| match self.gpu.memory() {
            Ok((free, _)) if free < len * std::mem::size_of::<T>() => {
                KernelError::OutOfMemory { needed: len * std::mem::size_of::<T>(), free }
            }
            _ => KernelError::driver("allocation")(e),
        })
    }

    /// Copies `host` into `dev`, which has exactly its length.
    pub fn upload_into<T: DeviceRepr>(&self, host: &[T], dev: &mut CudaViewMut<'_, T>) -> Result<()> {
        self.permit.moved(std::mem::size_of_val(host));
        self.stream().memcpy_htod(host, dev).map_err(KernelError::driver("upload"))
    }

    pub fn download_view<T: DeviceRepr + Default + Clone>(&self, dev: &CudaViewMut<'_, T>) -> Result<Vec<T>> {
        self.permit.moved(dev.len() * std::mem::size_of::<T>());
        self.stream().clone_dtoh(dev).map_err(KernelError::driver("download"))
    }

    pub fn download<T: DeviceRepr + Default + Clone>(&self, dev: &CudaSlice<T>) -> Result<Vec<T>> {
        self.permit.moved(dev.len() * std::mem::size_of::<T>());
        self.stream().clone_dtoh(dev).map_err(KernelError::driver("download"))
    }
}
