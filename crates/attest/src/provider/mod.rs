//! Providers: how an enclave obtains evidence (TCB side: synchronous, no network).
