//! Shared by the web viewer's host tests: the bundled assets and a poller for the jobs' futures.

use std::future::Future;
use std::path::PathBuf;

/// `www/assets`: the bundled demo model and sample case.
pub fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../www/assets")
}

/// Run a job's future to the end on this thread (the CPU backend never waits on anything).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::yield_now();
    }
}
