//! Exit statuses systemctl uses (LSB init script codes where it follows them).

pub const SUCCESS: i32 = 0;
pub const FAILURE: i32 = 1;
pub const NOTIMPLEMENTED: i32 = 3;
pub const NOPERMISSION: i32 = 4;
pub const NOTINSTALLED: i32 = 5;
pub const NOTCONFIGURED: i32 = 6;
/// `is-active`/`status` for a unit that is not running (LSB "program is not running").
pub const NOT_RUNNING: i32 = 3;
/// `status` for a unit that does not exist (LSB "program or service status is unknown").
pub const STATUS_UNKNOWN: i32 = 4;
