//! The store's Lua scripts, each in `lua/` to be read, linted and tested alone. Every
//! one runs after `lua/prelude.lua` (the keys of one license, the clock, the lazy and
//! bounded reaping): one script is one atomic check-and-change in Redis.

use std::sync::LazyLock;

use redis::Script;

const PRELUDE: &str = include_str!("lua/prelude.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// The scripts, each `lua/<name>.lua` (its arguments are described at its head), loaded
/// once.
macro_rules! scripts {
    ($($name:ident = $file:literal;)*) => {
        $(
            #[doc = concat!("`lua/", $file, "`.")]
            pub(super) static $name: LazyLock<Script> =
                LazyLock::new(|| script(include_str!(concat!("lua/", $file))));
        )*
    };
}

scripts! {
    ACQUIRE_SCRIPT = "acquire.lua";
    HEARTBEAT_SCRIPT = "heartbeat.lua";
    RENEWED_SCRIPT = "renewed.lua";
    END_SCRIPT = "end.lua";
    LIST_SCRIPT = "list.lua";
    PAGE_SCRIPT = "page.lua";
    TAKE_LAPSED_SCRIPT = "take_lapsed.lua";
}
