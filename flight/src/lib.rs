//! Arrow Flight for Hypnos: the StoreAPI that lets query nodes fan out to store nodes, and
//! Flight SQL for analysts. Empty in this build: the gRPC server of `hypnos all` serves only
//! the standard health service until this crate is filled.
