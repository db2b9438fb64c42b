//! Arrow IPC codec (placeholder).
