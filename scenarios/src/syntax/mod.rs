//! The scenario language: what a file says, and how it is read.

pub mod ast;
pub mod parser;
pub mod words;

#[cfg(test)]
mod tests;

pub use ast::*;
pub use parser::{parse_duration, parse_file, parse_str, ParseError};
