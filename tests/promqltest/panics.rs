//! Panics of the code under test (e.g. an operator that is not written yet) become failures
//! of the one eval or load that hit them, with the panic's message and place, instead of
//! ending the run.

use std::future::Future;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::FutureExt;

/// How many `catch`/`catch_async` calls are running: while any is, panics are not printed.
static CATCHING: AtomicUsize = AtomicUsize::new(0);
/// Message and place of the last panic seen while catching.
static LAST: Mutex<Option<String>> = Mutex::new(None);

/// Installs the hook that records panics (instead of printing them) while they are caught.
pub(crate) fn install_hook() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
        if CATCHING.load(Ordering::SeqCst) == 0 {
            print(info);
            return;
        }
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let text = format!("{}{place}", payload_text(info.payload()));
        if let Ok(mut last) = LAST.lock() {
            *last = Some(text);
        }
    }));
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

fn describe(payload: Box<dyn std::any::Any + Send>) -> String {
    let recorded = LAST.lock().ok().and_then(|mut l| l.take());
    format!(
        "panicked: {}",
        recorded.unwrap_or_else(|| payload_text(payload.as_ref()))
    )
}

struct Catching;

impl Catching {
    fn start() -> Catching {
        CATCHING.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut last) = LAST.lock() {
            *last = None;
        }
        Catching
    }
}

impl Drop for Catching {
    fn drop(&mut self) {
        CATCHING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `f`; a panic becomes `Err("panicked: <message> at <file>:<line>")`.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let _guard = Catching::start();
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(describe)
}

/// [`catch`] for a future.
pub(crate) async fn catch_async<R>(f: impl Future<Output = R>) -> Result<R, String> {
    let _guard = Catching::start();
    AssertUnwindSafe(f).catch_unwind().await.map_err(describe)
}

/// A caught panic is reported with its message; an uncaught one still prints.
pub(crate) fn self_check() {
    let r: Result<(), String> = catch(|| panic!("boom {}", 7));
    let e = r.unwrap_err();
    assert!(e.starts_with("panicked: boom 7 at "), "{e}");
    assert!(e.contains("panics.rs"), "{e}");
    assert_eq!(catch(|| 3), Ok(3));
    let r: Result<(), String> = futures::executor::block_on(catch_async(async {
        futures::future::ready(()).await;
        panic!("async boom")
    }));
    let e = r.unwrap_err();
    assert!(e.starts_with("panicked: async boom at "), "{e}");
    assert_eq!(futures::executor::block_on(catch_async(async { 4 })), Ok(4));
    assert_eq!(CATCHING.load(Ordering::SeqCst), 0);
}
