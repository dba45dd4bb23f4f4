//! Who this engine is, settled when it is built: its instance id (persisted in
//! `cache-dir`, or the config's) and its hardware id (`docs/explanation/seats.md`), which seat accounting
//! and the seal of `state.json` both use.

use std::path::Path;

use crate::cache::{read_bounded, CacheDir, INSTANCE_ID_FILE};
use crate::config::Config;
use crate::seat::hardware_id;

/// The engine's identity, and what loading it had to say.
pub(super) struct Identity {
    pub instance_id: String,
    pub hardware_id: String,
    /// Warnings for the log, written once logging has started.
    pub notes: Vec<String>,
}

impl Identity {
    /// The config's instance id, else the persisted one (created on first use); the
    /// config's `seat.hardware-id`, else the SHA-256 of `<machine id>:<instance id>`.
    pub fn load(config: &Config, cache: &CacheDir, machine_id: Option<&str>) -> Identity {
        let mut notes = Vec::new();
        let instance_id = instance_id(config, cache, &mut notes);
        let hardware_id = match &config.seat.hardware_id {
            Some(h) => h.clone(),
            None => hardware_id(&machine_id_or_host(machine_id), &instance_id),
        };
        Identity {
            instance_id,
            hardware_id,
            notes,
        }
    }
}

fn instance_id(config: &Config, cache: &CacheDir, notes: &mut Vec<String>) -> String {
    if let Some(id) = &config.instance_id {
        return id.clone();
    }
    match cache.read(INSTANCE_ID_FILE) {
        Ok(Some(s)) if uuid::Uuid::parse_str(s.trim()).is_ok() => return s.trim().to_string(),
        Ok(Some(_)) => notes.push("instance-id file is not a UUID; creating a new one".into()),
        Ok(None) => {}
        Err(e) => notes.push(format!("instance-id not read: {e}")),
    }
    let id = uuid::Uuid::new_v4().to_string();
    if let Err(e) = cache.write(INSTANCE_ID_FILE, &id) {
        notes.push(format!(
            "instance id not persisted ({e}); using a fresh one for this run"
        ));
    }
    id
}

/// The machine id `given` (tests), else `/etc/machine-id`, else the host name.
pub(super) fn machine_id_or_host(given: Option<&str>) -> String {
    if let Some(m) = given {
        return m.to_string();
    }
    match read_bounded(Path::new("/etc/machine-id"), true) {
        Ok(Some(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => crate::platform::host_name(),
    }
}
