//! Rows of plain (non-FHIR) tables, decoded by a backend for [`SqlExec::cells`]: the modules
//! whose SQL is written once for both backends (the gathering tables, break-glass, …) name the
//! column types they expect and read each row back in order with [`Cols`].
//!
//! [`SqlExec::cells`]: crate::engine::SqlExec::cells

use crate::error::StoreError;

/// The type of a column a backend decodes for [`SqlExec::cells`](crate::engine::SqlExec::cells).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Bytes,
    /// A boolean column (SQLite 0/1, PostgreSQL `BOOLEAN`), decoded as [`Cell::Int`] 0 or 1.
    Bool,
}

/// One decoded, nullable column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

/// Reads one decoded row's cells in order.
pub(crate) struct Cols(pub(crate) std::vec::IntoIter<Cell>);

fn unexpected(what: &str) -> StoreError {
    StoreError::Backend(format!("unexpected column value: expected {what}"))
}

impl Cols {
    fn next(&mut self) -> Cell {
        self.0.next().unwrap_or(Cell::Null)
    }
    pub(crate) fn text(&mut self) -> Result<String, StoreError> {
        self.opt_text()?.ok_or_else(|| unexpected("text"))
    }
    pub(crate) fn opt_text(&mut self) -> Result<Option<String>, StoreError> {
        match self.next() {
            Cell::Text(s) => Ok(Some(s)),
            Cell::Null => Ok(None),
            _ => Err(unexpected("text")),
        }
    }
    pub(crate) fn int(&mut self) -> Result<i64, StoreError> {
        self.opt_int()?.ok_or_else(|| unexpected("an integer"))
    }
    pub(crate) fn opt_int(&mut self) -> Result<Option<i64>, StoreError> {
        match self.next() {
            Cell::Int(i) => Ok(Some(i)),
            Cell::Null => Ok(None),
            _ => Err(unexpected("an integer")),
        }
    }
    /// A [`Kind::Bool`] column.
    pub(crate) fn bool(&mut self) -> Result<bool, StoreError> {
        Ok(self.int()? != 0)
    }
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, StoreError> {
        match self.next() {
            Cell::Bytes(b) => Ok(b),
            _ => Err(unexpected("bytes")),
        }
    }
}
