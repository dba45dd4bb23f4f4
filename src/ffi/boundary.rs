//! The panic boundary, argument checks, out-params and the thread-local last error.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{emit_log, lic_result};
use crate::log::Level;

/// Longest last-error message kept, in bytes (longer ones are cut at a character).
const LAST_ERROR_BYTES: usize = 1024;

// Only types without a destructor live in thread-locals here: a thread-local destructor
// registered on a host thread keeps the library mapped after `dlclose` for as long as that
// thread lives.
thread_local! {
    static LAST_ERROR: RefCell<([u8; LAST_ERROR_BYTES], usize)> =
        const { RefCell::new(([0; LAST_ERROR_BYTES], 0)) };
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// A failed call: its result code and message.
pub(crate) struct CallError(pub lic_result, pub String);

impl CallError {
    pub(crate) fn new(code: lic_result, msg: impl Into<String>) -> Self {
        CallError(code, msg.into())
    }
}

/// The one map from the engine's errors to result codes.
impl From<crate::engine::EngineError> for CallError {
    fn from(e: crate::engine::EngineError) -> Self {
        use crate::engine::EngineError as E;
        let code = match e {
            E::Unsupported(_) => lic_result::LIC_ERR_UNSUPPORTED,
            E::NotRunning => lic_result::LIC_ERR_NOT_INITIALIZED,
            E::RefreshFailed(_) | E::BorrowFailed(_) => lic_result::LIC_ERR_REFRESH_FAILED,
            E::Spawn(_) | E::Startup(_) | E::WorkerPanicked => lic_result::LIC_ERR_INTERNAL,
        };
        CallError::new(code, e.to_string())
    }
}

/// A config that does not parse or validate.
impl From<crate::config::ConfigError> for CallError {
    fn from(e: crate::config::ConfigError) -> Self {
        CallError::new(lic_result::LIC_ERR_CONFIG, e.to_string())
    }
}

/// Runs `f` behind the panic boundary; records the message of a failure on this thread.
pub(crate) fn run(name: &str, f: impl FnOnce() -> Result<(), CallError>) -> lic_result {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => lic_result::LIC_OK,
        Ok(Err(CallError(code, msg))) => {
            set_last_error(&msg);
            code
        }
        Err(payload) => {
            let msg = format!("internal error in {name}: {}", panic_message(&*payload));
            set_last_error(&msg);
            emit_log(Level::Error, &msg);
            lic_result::LIC_ERR_INTERNAL
        }
    }
}

/// Runs `f` behind the panic boundary, answering `default` if it panics.
pub(crate) fn run_or<T>(name: &str, default: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            let msg = format!("internal error in {name}: {}", panic_message(&*payload));
            set_last_error(&msg);
            emit_log(Level::Error, &msg);
            default
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

/// Records `msg` as this thread's last error.
pub(crate) fn set_last_error(msg: &str) {
    // A NUL would cut the message short on the C side.
    let clean = msg.replace('\0', "\\0");
    let mut end = clean.len().min(LAST_ERROR_BYTES);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            e.0[..end].copy_from_slice(&clean.as_bytes()[..end]);
            e.1 = end;
        }
    });
}

/// This thread's last error message (empty when none).
pub(crate) fn last_error() -> String {
    LAST_ERROR
        .try_with(|e| {
            e.try_borrow()
                .map(|e| String::from_utf8_lossy(&e.0[..e.1]).into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// Whether this thread is inside the log callback.
pub(crate) fn in_callback() -> bool {
    IN_CALLBACK.try_with(Cell::get).unwrap_or(false)
}

/// Marks this thread as inside the log callback while `f` runs.
pub(crate) fn as_callback(f: impl FnOnce()) {
    let was = in_callback();
    let _ = IN_CALLBACK.try_with(|c| c.set(true));
    f();
    let _ = IN_CALLBACK.try_with(|c| c.set(was));
}

/// Borrows a C string argument: NULL or invalid UTF-8 is `LIC_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the call.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> Result<&'a str, CallError> {
    if p.is_null() {
        return Err(CallError::new(
            lic_result::LIC_ERR_INVALID_ARGUMENT,
            format!("{name} is NULL"),
        ));
    }
    CStr::from_ptr(p).to_str().map_err(|_| {
        CallError::new(
            lic_result::LIC_ERR_INVALID_ARGUMENT,
            format!("{name} is not valid UTF-8"),
        )
    })
}

/// Copies `s` and a NUL into `buf`. Too small: `*out_len` gets the size needed and `buf`
/// is untouched.
///
/// # Safety
/// `buf` is NULL or valid for `len` bytes; `out_len` is NULL or valid for one write.
pub(crate) unsafe fn write_str(
    s: &str,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> Result<(), CallError> {
    let needed = s.len() + 1;
    if buf.is_null() && len > 0 {
        return Err(CallError::new(
            lic_result::LIC_ERR_INVALID_ARGUMENT,
            "buf is NULL but len is not 0",
        ));
    }
    if len < needed {
        if !out_len.is_null() {
            *out_len = needed;
        }
        return Err(CallError::new(
            lic_result::LIC_ERR_BUFFER_TOO_SMALL,
            format!("buffer of {len} bytes is too small: {needed} needed"),
        ));
    }
    std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
    *buf.add(s.len()) = 0;
    if !out_len.is_null() {
        *out_len = s.len();
    }
    Ok(())
}
