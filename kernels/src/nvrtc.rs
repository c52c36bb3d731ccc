//! Run-time compilation of the kernel units to CUBIN with NVRTC, for the exact
//! architecture of the device (no PTX, so no JIT and no driver/PTX version coupling).
//!
//! `libnvrtc` is loaded on first use; [`available`] checks for it first, because cudarc
//! panics when a library it needs is missing. Calls are additionally wrapped in
//! `catch_unwind`, so an NVRTC too old to export a symbol is an error, not a crash.

use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use cudarc::nvrtc::{result, sys};

use crate::error::{KernelError, Result};
use crate::source::Unit;

/// Whether `libnvrtc` can be loaded on this machine.
pub fn available() -> bool {
    // SAFETY: `is_culib_present` only tries to dlopen candidate library names and drops
    // the handle; it touches no CUDA state.
    catch_unwind(|| unsafe { sys::is_culib_present() }).unwrap_or(false)
}

/// NVRTC's version as (major, minor).
pub fn version() -> Result<(i32, i32)> {
    if !available() {
        return Err(KernelError::NoNvrtc);
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present (checked above); both out-pointers are valid locals.
    let r = catch_unwind(AssertUnwindSafe(|| unsafe { sys::nvrtcVersion(&mut major, &mut minor) }));
    match r {
        Ok(sys::nvrtcResult::NVRTC_SUCCESS) => Ok((major, minor)),
        Ok(e) => Err(KernelError::Compile { unit: "-".into(), arch: "-".into(), log: format!("nvrtcVersion: {e:?}") }),
        Err(_) => Err(KernelError::NoNvrtc),
    }
}

/// The real architectures this NVRTC compiles for, as `10 * major + minor` (CUDA 13 starts
/// at 75: Turing; CUDA 12 at 50).
pub fn supported_archs() -> Result<Vec<i32>> {
    if !available() {
        return Err(KernelError::NoNvrtc);
    }
    let fail = |what: String| KernelError::Compile { unit: "-".into(), arch: "-".into(), log: what };
    let r = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<i32>> {
        let mut n = 0;
        // SAFETY: the library is present (checked above); `n` is a valid out-pointer.
        let r = unsafe { sys::nvrtcGetNumSupportedArchs(&mut n) };
        if r != sys::nvrtcResult::NVRTC_SUCCESS || n <= 0 {
            return Err(fail(format!("nvrtcGetNumSupportedArchs: {r:?}")));
        }
        let mut archs = vec![0; n as usize];
        // SAFETY: `archs` holds the `n` entries NVRTC reported.
        let r = unsafe { sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) };
        if r != sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(fail(format!("nvrtcGetSupportedArchs: {r:?}")));
        }
        Ok(archs)
    }));
    r.unwrap_or_else(|_| Err(fail("NVRTC panicked (a symbol missing from an old libnvrtc?)".into())))
}

/// Why a device of compute capability `major.minor` cannot run the kernels, if it cannot:
/// the kernels need 7.0 (independent thread scheduling, 64-bit atomics they rely on) and
/// NVRTC must compile for the device's exact architecture (`supported`, from
/// [`supported_archs`]).
pub fn unsupported(major: i32, minor: i32, supported: &[i32]) -> Option<String> {
    let arch = major * 10 + minor;
    if major < 7 {
        return Some("dualchain's kernels need compute capability 7.0 or newer".into());
    }
    if !supported.contains(&arch) {
        let range = match (supported.iter().min(), supported.iter().max()) {
            (Some(lo), Some(hi)) => format!("sm_{lo} to sm_{hi}"),
            _ => "no architecture".into(),
        };
        return Some(format!("this NVRTC compiles for {range}, not sm_{arch}"));
    }
    None
}

/// The options every unit is compiled with.
pub fn options(arch: &str) -> Vec<String> {
    vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".into(),
        "-default-device".into(),
        "--extra-device-vectorization".into(),
    ]
}

fn c_log(bytes: &[c_char]) -> String {
    let bytes: Vec<u8> = bytes.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Compiles `unit` to a CUBIN image for `arch` (a real architecture such as `sm_90`).
pub fn compile(unit: &Unit, arch: &str) -> Result<Vec<u8>> {
    if !available() {
        return Err(KernelError::NoNvrtc);
    }
    if !arch.starts_with("sm_") {
        return Err(KernelError::Input(format!("{arch} is not a real GPU architecture (sm_XY)")));
    }
    let src = CString::new(unit.source()).map_err(|_| KernelError::Input("kernel source holds a NUL byte".into()))?;
    let name = CString::new(unit.path).expect("unit paths hold no NUL");
    let fail = |log: String| KernelError::Compile { unit: unit.name.into(), arch: arch.into(), log };
    let opts = options(arch);
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<u8>> {
        let prog = result::create_program(&src, Some(&name)).map_err(|e| fail(format!("create: {e:?}")))?;
        // SAFETY: `prog` was just created and is destroyed exactly once below; `src` and
        // `name` outlive it.
        let compiled = unsafe { result::compile_program(prog, &opts) };
        // SAFETY: as above.
        let log = unsafe { result::get_program_log(prog) }.map(|l| c_log(&l)).unwrap_or_default();
        let image = match compiled {
            Err(e) => Err(fail(format!("{e:?}\n{log}"))),
            Ok(()) => {
                let mut size = 0usize;
                // SAFETY: `prog` compiled successfully; `size` is a valid out-pointer.
                let r = unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) };
                if r != sys::nvrtcResult::NVRTC_SUCCESS || size == 0 {
                    Err(fail(format!("no CUBIN ({r:?}); {log}")))
                } else {
                    let mut buf = vec![0u8; size];
                    // SAFETY: `buf` holds exactly the `size` bytes NVRTC reported.
                    let r = unsafe { sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut c_char) };
                    if r == sys::nvrtcResult::NVRTC_SUCCESS {
                        Ok(buf)
                    } else {
                        Err(fail(format!("nvrtcGetCUBIN: {r:?}")))
                    }
                }
            }
        };
        // SAFETY: `prog` is live and not used after this.
        let _ = unsafe { result::destroy_program(prog) };
        image
    }));
    outcome.unwrap_or_else(|_| Err(fail("NVRTC panicked (a symbol missing from an old libnvrtc?)".into())))
}
