//! The history's queries, checked at compile time by sqlx's macros against the development
//! database built from `history.sql` (offline metadata in `.sqlx/`) when the `checked-queries`
//! feature is on, as CI builds it; otherwise the same SQL text runs as a plain query. So a
//! project that depends on backstop builds no query macro of ours: nothing in its build reads
//! a database URL or a `sqlx.toml` for backstop, and sqlx's macro crates are not pulled in.

/// A statement whose rows do not matter, with its arguments bound in order.
macro_rules! execute {
    ($sql:literal $(, $arg:expr)* $(,)?) => {{
        #[cfg(feature = "checked-queries")]
        let query = sqlx::query!($sql $(, $arg)*);
        #[cfg(not(feature = "checked-queries"))]
        let query = sqlx::query($sql) $(.bind($arg))*;
        query
    }};
}

/// A query whose rows are `$row`s (read by position at run time: `$row` implements
/// [`sqlx::FromRow`] by hand; by the macro's type checks when checked).
macro_rules! fetch_rows {
    ($row:ty, $sql:literal) => {{
        #[cfg(feature = "checked-queries")]
        let query = sqlx::query_as!($row, $sql);
        #[cfg(not(feature = "checked-queries"))]
        let query = sqlx::query_as::<_, $row>($sql);
        query
    }};
}

/// A query of one column of type `$ty`.
macro_rules! fetch_scalar {
    ($ty:ty, $sql:literal) => {{
        #[cfg(feature = "checked-queries")]
        let query = sqlx::query_scalar!($sql);
        #[cfg(not(feature = "checked-queries"))]
        let query = sqlx::query_scalar::<_, $ty>($sql);
        query
    }};
}

pub(super) use {execute, fetch_rows, fetch_scalar};
