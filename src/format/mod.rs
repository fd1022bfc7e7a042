//! The MXNet `.params` (NDArray list) format.
