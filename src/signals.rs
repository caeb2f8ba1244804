//! SIGINT and SIGTERM: the first stops a run after the pages in flight, the second at once.

use pipedrive_engine::StopSignal;

use crate::fail::exit;

/// A stop signal raised by SIGINT/SIGTERM: the run finishes the pages in flight, then `then`.
/// A second signal ends the process at once: state is safe without the pages in flight, as
/// only committed pages count.
pub(crate) fn stop_on_signal(then: &'static str) -> StopSignal {
    let stop = StopSignal::default();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::warn!(
            "stopping: finishing the pages in flight and {then} (interrupt again to stop at once)"
        );
        on_signal.stop();
        shutdown_signal().await;
        eprintln!(
            "error: stopped at once on a second interrupt; the next run resumes from the last committed page"
        );
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
    stop
}

pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
