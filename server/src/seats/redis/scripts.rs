//! The store's Lua scripts, each in `lua/` to be read, linted and tested alone. Every
//! one runs after `lua/prelude.lua` (the keys of one license, the clock, the lazy and
//! bounded reaping): one script is one atomic check-and-change in Redis.

use std::sync::LazyLock;

use redis::Script;

const PRELUDE: &str = include_str!("lua/prelude.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// `lua/acquire.lua` (its arguments are described at its head).
pub(super) static ACQUIRE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/acquire.lua")));

/// `lua/heartbeat.lua` (its arguments are described at its head).
pub(super) static HEARTBEAT_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/heartbeat.lua")));

/// `lua/renewed.lua` (its arguments are described at its head).
pub(super) static RENEWED_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/renewed.lua")));

/// `lua/end.lua` (its arguments are described at its head).
pub(super) static END_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/end.lua")));

/// `lua/list.lua` (its arguments are described at its head).
pub(super) static LIST_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/list.lua")));

/// `lua/page.lua` (its arguments are described at its head).
pub(super) static PAGE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/page.lua")));

/// `lua/take_lapsed.lua` (its arguments are described at its head).
pub(super) static TAKE_LAPSED_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/take_lapsed.lua")));
