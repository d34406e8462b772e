//! php-fpm-rs: PHP-FPM rebuilt in Rust for systemd. The modules follow the layers of
//! DESIGN.md; FastCGI and config know nothing of PHP or systemd.

pub mod access;
pub mod cgi;
pub mod cli;
pub mod config;
pub mod fastcgi;
pub mod logging;
pub mod php;
pub mod pm;
pub mod scoreboard;
pub mod status;
pub mod sys;
pub mod systemd;
pub mod worker;
