//! The command line's commands, each a thin adapter over the service layer or the admin
//! API.

pub(crate) mod admin;
pub(crate) mod args;
pub(crate) mod relay;
pub(crate) mod reports;
pub(crate) mod store;
