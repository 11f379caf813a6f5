//! The machinery every operation that changes a database runs on: the locked session and its
//! one skeleton ([`session`]), what is pending and what is refused ([`plan`], pure), the probe
//! protocol ([`probe`]), running a script statement by statement ([`script`]), foreign-key
//! checks ([`foreign_keys`]), which effects a run removed ([`supersede`]) and the tracing
//! spans of a run ([`trace`]).

pub(crate) mod database;
pub(crate) mod foreign_keys;
pub(crate) mod plan;
pub(crate) mod probe;
pub(crate) mod script;
pub(crate) mod session;
pub(crate) mod supersede;
pub(crate) mod trace;
