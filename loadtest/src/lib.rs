//! Mock push service.
