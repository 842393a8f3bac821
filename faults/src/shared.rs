//! How a `shared:DUR` request answers (TS-1), on every target: `200` with these headers — what
//! it found in its process's slot when it read it back, its own token, and the token it found.

/// `intact` or `clobbered`.
pub const STATE_HEADER: &str = "X-Shared-State";
/// The request's own token (unique among the requests of its process).
pub const TOKEN_HEADER: &str = "X-Shared-Token";
/// The token found in the slot at the read-back: its own when intact.
pub const FOUND_HEADER: &str = "X-Shared-Found";

/// The state-header values.
pub const INTACT: &str = "intact";
pub const CLOBBERED: &str = "clobbered";
