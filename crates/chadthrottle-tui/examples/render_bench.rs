//! Frame render time of the process table with 1 000 processes (BENCHMARKS.md):
//! `cargo run --release -p chadthrottle-tui --example render_bench`.

use chadthrottle_tui::Event;
use chadthrottle_tui::fixtures::{new_app, reading, usage};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::collections::HashMap;
use std::time::Instant;

fn main() {
    const PROCESSES: u32 = 1000;
    const FRAMES: usize = 500;
    let processes: Vec<_> = (1..=PROCESSES)
        .map(|pid| usage(pid, &format!("process-{pid}"), u64::from(pid) * 1000))
        .collect();
    // colors on, as a user sees it
    let mut app = new_app();
    app.color = true;
    for (width, height) in [(200u16, 60u16), (80, 24)] {
        app.handle(Event::Resize(width, height));
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
        let (mut update, mut draw) = (Vec::new(), Vec::new());
        for frame in 0..FRAMES {
            let started = Instant::now();
            app.handle(Event::Update {
                reading: reading(&processes, frame as u64),
                limits: HashMap::new(),
            });
            let updated = Instant::now();
            terminal
                .draw(|f| chadthrottle_tui::view::draw(f, &app))
                .expect("draw");
            update.push(updated - started);
            draw.push(updated.elapsed());
        }
        for times in [&mut update, &mut draw] {
            times.sort();
        }
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{PROCESSES} processes at {width}×{height}: update (monitor + sort) median {:.3} ms, p99 {:.3} ms; \
             render median {:.3} ms, p99 {:.3} ms ({FRAMES} frames)",
            ms(update[FRAMES / 2]),
            ms(update[FRAMES * 99 / 100]),
            ms(draw[FRAMES / 2]),
            ms(draw[FRAMES * 99 / 100]),
        );
    }
}
