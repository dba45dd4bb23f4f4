//! The engine started through its C ABI, as an embedding host starts it.

use std::ffi::{c_char, CStr, CString};

use lic4es::ffi;

use crate::input::{paths_from, read_path};
use serde_json::Value;

/// A host on the C ABI, exactly as an embedding application sees the engine.
pub(crate) struct Host;

impl Host {
    pub(crate) fn start(path: &str) -> Result<Host, String> {
        let dir = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let text = paths_from(&read_path(path)?, dir);
        let c = CString::new(text).map_err(|_| format!("{path} contains a NUL byte"))?;
        match ffi::lic_init(c.as_ptr()) {
            ffi::lic_result::LIC_OK => Ok(Host),
            code => Err(format!("lic_init: {code:?}: {}", Self::last_error())),
        }
    }

    pub(crate) fn last_error() -> String {
        let mut buf = vec![0 as c_char; 4096];
        ffi::lic_last_error(buf.as_mut_ptr(), buf.len(), std::ptr::null_mut());
        // SAFETY: lic_last_error wrote a NUL-terminated string into buf.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    pub(crate) fn status(&self) -> Result<Value, String> {
        // The status can grow between asking its size and reading it (the worker enters
        // offline mode meanwhile, say): ask again with the size it then needs, as the
        // bindings do.
        let mut needed = 0usize;
        let mut code = ffi::lic_status_json(std::ptr::null_mut(), 0, &mut needed);
        for _ in 0..4 {
            if code != ffi::lic_result::LIC_ERR_BUFFER_TOO_SMALL {
                break;
            }
            let mut buf = vec![0 as c_char; needed.max(1)];
            code = ffi::lic_status_json(buf.as_mut_ptr(), buf.len(), &mut needed);
            if code == ffi::lic_result::LIC_OK {
                // SAFETY: lic_status_json wrote a NUL-terminated string into buf.
                let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
                return serde_json::from_str(&text).map_err(|e| e.to_string());
            }
        }
        Err(format!("lic_status_json: {code:?}: {}", Self::last_error()))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        ffi::lic_shutdown();
    }
}
