//! The systemd layer: sockets systemd passes (socket activation, [`listen`]) and the
//! service manager protocol (readiness, status, reload, stop and the health-gated
//! watchdog, [`notify`]). The journald sink lives in `logging`.
//!
//! Nothing here is required: without LISTEN_FDS the master binds `listen =` itself,
//! and without NOTIFY_SOCKET every notification is a no-op, so the same binary runs
//! by hand, in a container or under systemd.
#![forbid(unsafe_code)]

pub mod listen;
pub mod notify;

pub use listen::Activation;
pub use notify::{Health, Notifier, Stats};
