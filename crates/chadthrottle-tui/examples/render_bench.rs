//! Frame render time of the process table with 1 000 processes, listed and grouped into
//! 100 applications, all open, and of the rules view with the kernel's full 4 096 rules
//! over 65 536 members (BENCHMARKS.md):
//! `cargo run --release -p chadthrottle-tui --example render_bench`.

use chadthrottle_core::ProcessRef;
use chadthrottle_tui::Event;
use chadthrottle_tui::fixtures::{exe_rule, new_app, reading, usage};
use chadthrottle_tui::grouping::Membership;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn main() {
    const PROCESSES: u32 = 1000;
    const FRAMES: usize = 500;
    let processes: Vec<_> = (1..=PROCESSES)
        .map(|pid| usage(pid, &format!("process-{pid}"), u64::from(pid) * 1000))
        .collect();
    // colors on, as a user sees it
    let mut app = new_app();
    app.color = true;
    app.handle(Event::Update {
        reading: reading(&processes, 0),
        limits: HashMap::new(),
    });
    // 100 executables, 10 processes each
    let exes = (1..=PROCESSES).map(|pid| {
        let process = ProcessRef { pid, start_time: 1 };
        (process, format!("/usr/bin/app-{}", pid % 100))
    });
    app.handle(Event::Membership(Membership {
        exes: exes.collect(),
        rules: HashMap::new(),
    }));
    let sizes = [
        (200u16, 60u16, false),
        (80, 24, false),
        (200, 60, true),
        (80, 24, true),
    ];
    for (width, height, grouped) in sizes {
        if grouped && app.grouping.is_none() {
            app.toggle_grouping();
            let grouping = app.grouping.as_mut().expect("grouped");
            let keys: Vec<_> = grouping
                .applications
                .iter()
                .map(|a| a.key.clone())
                .collect();
            for key in &keys {
                grouping.set_expanded(key, true);
            }
            app.refresh();
        }
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
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let table = if grouped {
            "grouped into 100 open applications"
        } else {
            "listed"
        };
        println!(
            "{PROCESSES} processes {table} at {width}×{height}: update (monitor + sort) fastest {:.3} ms, \
             median {:.3} ms, p99 {:.3} ms; render median {:.3} ms, p99 {:.3} ms ({FRAMES} frames)",
            ms(update[0]),
            ms(update[FRAMES / 2]),
            ms(update[FRAMES * 99 / 100]),
            ms(draw[FRAMES / 2]),
            ms(draw[FRAMES * 99 / 100]),
        );
    }
    rules_view(&processes);
}

/// The rules view (`R`) with 4 096 rules of 16 members each, the readings' processes, the
/// rules listed afresh before every frame as the runner sends them.
fn rules_view(processes: &[(u32, String, u64)]) {
    const RULES: u32 = 4096;
    const MEMBERS: u32 = 16;
    const FRAMES: usize = 200;
    let rules: Vec<_> = (0..RULES)
        .map(|rule| {
            let members: Vec<u32> = (0..MEMBERS)
                .map(|member| (rule * MEMBERS + member) % 1000 + 1)
                .collect();
            exe_rule(&format!("/usr/bin/app-{rule}"), 1 << 20, &members)
        })
        .collect();
    let mut app = new_app();
    app.color = true;
    app.handle(Event::Update {
        reading: reading(processes, 0),
        limits: HashMap::new(),
    });
    app.handle(Event::Key(ratatui::crossterm::event::KeyEvent::new(
        ratatui::crossterm::event::KeyCode::Char('R'),
        ratatui::crossterm::event::KeyModifiers::NONE,
    )));
    for (width, height) in [(200u16, 60u16), (80, 24)] {
        app.handle(Event::Resize(width, height));
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
        let mut frames = Vec::new();
        for frame in 0..FRAMES {
            // the runner hands the list over by value: its copy is not the view's cost
            let listed = rules.clone();
            let started = Instant::now();
            app.handle(Event::Rules(listed));
            // the selection walks down the list, so that the view scrolls
            app.rule_selected = frame * 20 % rules.len();
            terminal
                .draw(|f| chadthrottle_tui::view::draw(f, &app))
                .expect("draw");
            frames.push(started.elapsed());
        }
        frames.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "rules view, {RULES} rules of {MEMBERS} members at {width}×{height}: list taken + \
             render median {:.3} ms, p99 {:.3} ms ({FRAMES} frames)",
            ms(frames[FRAMES / 2]),
            ms(frames[FRAMES * 99 / 100]),
        );
    }
}
