//! Matchers shared by all plugins. Each validates while it deserializes, so a
//! bad pattern is refused at configuration time with the field's path.

mod cidr;
mod header;
mod method;
mod path;
mod request;
mod string;

pub use cidr::Cidr;
pub use header::{HeaderMatcher, HeaderTest};
pub use method::MethodSet;
pub use path::{PathMatcher, PathTemplate};
pub use request::RequestMatch;
pub use string::StringMatcher;
