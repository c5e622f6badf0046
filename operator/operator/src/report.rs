//! Rendering an error for a log line or a message: the error and every `source()` below
//! it, joined by ": " ("reconcile failed: reading the scale set failed: Azure answered
//! 500: ..."). A failure is logged with its whole chain, so the cause that can be acted
//! on (throttled, 403, a DNS failure) is never cut off after the first level.

use std::{error::Error, fmt};

/// `err` and its sources, "a: b: c". Use as a log field: `error = %Chain(&err)`.
pub struct Chain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// [`Chain`] as an owned string.
pub fn chain(err: &dyn Error) -> String {
    Chain(err).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("reconcile failed")]
        Pass(#[source] Middle),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("reading the scale set failed")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn every_source_is_rendered_after_the_error() {
        let err = Outer::Pass(Middle(std::io::Error::other("Azure answered 500")));
        assert_eq!(chain(&err), "reconcile failed: reading the scale set failed: Azure answered 500");
        assert_eq!(format!("{:?}", Chain(&err)), chain(&err));
    }

    #[test]
    fn an_error_without_sources_is_just_its_message() {
        assert_eq!(chain(&std::io::Error::other("alone")), "alone");
    }
}
