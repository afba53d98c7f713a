//! Adapters to the outside world. Each integration (payment gateways, mail, push, chat models,
//! object storage) lives here behind a trait owned by `yiren-core`; all of them send HTTP through
//! [`http::HttpClient`], the guarded client.

pub mod files;
pub mod http;
pub mod oauth;
pub mod push;
pub mod smtp;
pub mod wechat;
