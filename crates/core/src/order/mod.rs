//! Orders. So far the rules of their life cycle ([`state`]); checkout, storage and pages build on
//! them.

pub mod state;
