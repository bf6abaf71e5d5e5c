//! Collateral status
