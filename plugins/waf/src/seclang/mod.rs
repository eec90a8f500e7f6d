//! SecLang, the ModSecurity rule language, as far as the Core Rule Set uses it.
//!
//! - [`lexer`]: logical lines (continuations joined, comments dropped) and
//!   the quoted words of one directive;
//! - [`actions`]: the comma-separated action list of a rule;
//! - [`parser`]: directives into [`parser::Directive`] values.

pub mod actions;
pub mod lexer;
pub mod parser;
