//! The API's handlers, one module per noun.

pub mod accounts;
pub mod agent;
pub mod endpoints;
pub mod log;
pub mod policy;
pub mod requests;
pub mod systems;
