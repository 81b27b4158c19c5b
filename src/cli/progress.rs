//! The crawl progress bar of `crawl` and `demo` on a terminal.

use indicatif::{ProgressBar, ProgressStyle};

use crate::crawl::Progress;

/// A progress bar on a terminal, silent elsewhere.
pub struct BarProgress(pub ProgressBar);

impl BarProgress {
    pub fn new(visible: bool) -> BarProgress {
        let bar = if visible {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} crawling [{bar:30}] {pos}/{len} hosts {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        BarProgress(bar)
    }
}

impl Progress for BarProgress {
    fn start(&self, hosts: usize) {
        self.0.set_length(hosts as u64);
    }
    fn host_done(&self, seed: &str, outcome: &str) {
        self.0.set_message(format!("{seed}: {outcome}"));
        self.0.inc(1);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
