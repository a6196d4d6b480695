//! `roomy`: a plugin whose linear memory starts at 80 MiB (a zeroed
//! static, as the heap image of a Python or JS runtime makes it), so the
//! tests can show `describe` and `validate` get the memory it needs and a
//! check with less is refused by name.

use warden_plugin_sdk::prelude::*;

/// Eighty MiB the module's memory starts with (mutable, so it is zeroed
/// memory, not 80 MiB of data in the file).
static mut ROOM: [u8; ROOM_SIZE] = [0; ROOM_SIZE];
const ROOM_SIZE: usize = 80 << 20;

/// No settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {}

/// The plugin.
pub struct Roomy;

impl Plugin for Roomy {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::new("roomy", env!("CARGO_PKG_VERSION"))
            .description("starts with 80 MiB of memory")
    }

    fn run(_ctx: &mut Context<Config>) -> Result<Report, Error> {
        // Only the address is taken (kept, so the room is too).
        std::hint::black_box(std::ptr::addr_of!(ROOM));
        Ok(Report::ok(format!("{} MiB of room", ROOM_SIZE >> 20)))
    }
}

warden_plugin_sdk::export!(Roomy);
