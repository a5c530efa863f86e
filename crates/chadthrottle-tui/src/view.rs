//! The frame: the banner, the mode's screen, the status bar and any popup over them. A
//! pure function of the app state; each part is drawn by its module in `screens`, into
//! the rectangles of the app's layout.

use crate::app::App;
use crate::mode::Mode;
use crate::screens;
use crate::theme::Theme;
use ratatui::Frame;
use ratatui::widgets::Paragraph;

pub fn draw(frame: &mut Frame, app: &App) {
    let theme = Theme::new(app.color);
    let layout = app.layout();
    if let (Some(area), Some(text)) = (layout.banner, app.banner()) {
        frame.render_widget(
            Paragraph::new(format!(" {text}")).style(theme.banner()),
            area,
        );
    }
    match &app.mode {
        Mode::Graph => screens::graph::draw(frame, app, layout.main, &theme),
        Mode::Detail(tab) => screens::detail::draw(frame, app, *tab, layout.detail(), &theme),
        Mode::Rules => screens::rules_view::draw(frame, app, layout.main, &theme),
        Mode::History => screens::history::draw(frame, app, layout.main, &theme),
        _ => screens::table::draw(frame, app, layout.main, &theme),
    }
    screens::status_bar::draw(frame, app, layout.status, &theme);
    match &app.mode {
        Mode::Throttle(dialog) => screens::throttle::draw(frame, dialog, &theme),
        Mode::Help => screens::help::draw(frame, &theme),
        Mode::Backends => screens::backends::draw(frame, app, &theme),
        _ => {}
    }
}

/// Every screen drawn whole (banner, screen, status bar, popup), as insta snapshots.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::fixtures::{app_with, usage};
    use crate::keys::key;
    use crate::mode::Tab;
    use chadthrottle_core::backend::Availability;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::KeyCode;

    fn screen(app: &mut App, width: u16, height: u16) -> String {
        app.handle(Event::Resize(width, height));
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| draw(frame, app)).unwrap();
        terminal.backend().to_string()
    }

    fn press(app: &mut App, keys: &str) {
        for c in keys.chars() {
            app.handle(Event::Key(key(KeyCode::Char(c))));
        }
    }

    #[test]
    fn empty() {
        insta::assert_snapshot!(screen(&mut app_with(vec![]), 100, 12));
    }

    #[test]
    fn one_process() {
        insta::assert_snapshot!(screen(
            &mut app_with(vec![usage(4242, "curl", 1 << 20)]),
            100,
            8
        ));
    }

    #[test]
    fn five_hundred_processes_scroll_with_the_selection() {
        let processes = (1..=500)
            .map(|pid| usage(pid, &format!("proc{pid}"), u64::from(pid) * 1000))
            .collect();
        let mut app = app_with(processes);
        for _ in 0..30 {
            app.handle(Event::Key(key(KeyCode::Down)));
        }
        assert_eq!(app.selected.unwrap().pid, 470);
        insta::assert_snapshot!(screen(&mut app, 100, 16));
    }

    #[test]
    fn at_80x24_the_totals_give_way() {
        let processes = (1..=30)
            .map(|pid| usage(pid, "firefox-esr", u64::from(pid) * 70_000))
            .collect();
        let mut app = app_with(processes);
        app.handle(Event::Key(key(KeyCode::Char('t'))));
        press(&mut app, "1M");
        app.handle(Event::Key(key(KeyCode::Enter)));
        let text = screen(&mut app, 80, 24);
        assert!(!text.contains("↑ TOTAL"), "{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn a_blocked_direction_reads_as_top_prints_it() {
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        press(&mut app, "t0");
        app.handle(Event::Key(key(KeyCode::Enter)));
        let text = screen(&mut app, 100, 4);
        assert!(text.contains("⚡ ↓blocked ↑-"), "{text}");
    }

    #[test]
    fn throttle_dialog_with_an_invalid_field() {
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        app.handle(Event::Key(key(KeyCode::Char('t'))));
        press(&mut app, "1.2.3M");
        app.handle(Event::Key(key(KeyCode::Tab)));
        press(&mut app, "8mbit");
        insta::assert_snapshot!(screen(&mut app, 80, 24));
    }

    #[test]
    fn grouped_by_application_with_one_open() {
        let mut app = crate::fixtures::app_with_applications();
        press(&mut app, "a");
        app.handle(Event::Key(key(KeyCode::Right)));
        press(&mut app, "jjjj");
        app.handle(Event::Key(key(KeyCode::Right)));
        insta::assert_snapshot!(screen(&mut app, 100, 12));
    }

    #[test]
    fn a_rule_member_shows_the_rules_limit_named_beside_a_pid_limit() {
        let mut app = crate::fixtures::app_with_applications();
        // curl (20) gets a PID limit of its own; wget (30) is under the rule `downloads`
        press(&mut app, "j");
        assert_eq!(app.selected.map(|p| p.pid), Some(20));
        press(&mut app, "t2M");
        app.handle(Event::Key(key(KeyCode::Enter)));
        let text = screen(&mut app, 80, 10);
        // a line reads `"cells" Hidden by multi-width symbols: …`: the cells only
        let row = |pid: &str| {
            text.lines()
                .filter_map(|line| line.split('"').nth(1))
                .find(|cells| cells.starts_with(&format!("{pid} ")))
                .unwrap_or_default()
                .to_owned()
        };
        // the name is cut to the column, the brackets stay
        assert!(row("30").contains("⚡ ↓1MB/s ↑- [downl…]"), "{text}");
        let curl = row("20");
        assert!(
            curl.contains("⚡ ↓2MB/s ↑-") && !curl.contains('['),
            "{curl:?}"
        );
        assert!(!row("10").contains('⚡'), "firefox has no limit: {text}");
        insta::assert_snapshot!(text);
        press(&mut app, "jj");
        assert_eq!(app.selected.map(|p| p.pid), Some(30));
        app.handle(Event::Key(key(KeyCode::Enter)));
        let detail = screen(&mut app, 80, 12);
        assert!(
            detail.contains("limit  ⚡ ↓1MB/s ↑- (rule downloads)"),
            "{detail}"
        );
        insta::assert_snapshot!("a_rule_member_s_detail_names_the_rule", detail);
    }

    #[test]
    fn throttle_dialog_offers_the_application() {
        use crate::target_choice::TargetOffer;
        use chadthrottle_core::rule_target::RuleTarget;
        let mut app = app_with(vec![usage(4242, "syncthing", 1 << 20)]);
        press(&mut app, "t");
        let offer = |target, saved| TargetOffer {
            target,
            held: None,
            each: false,
            saved,
        };
        app.handle(Event::Targets {
            process: chadthrottle_core::ProcessRef {
                pid: 4242,
                start_time: 1,
            },
            offers: vec![
                offer(RuleTarget::Tree(4242), false),
                offer(RuleTarget::Exe("/usr/bin/syncthing".into()), true),
                offer(RuleTarget::Unit("syncthing.service".into()), false),
            ],
        });
        app.handle(Event::Key(key(KeyCode::Right)));
        app.handle(Event::Key(key(KeyCode::Right)));
        press(&mut app, "500K");
        insta::assert_snapshot!(screen(&mut app, 80, 24));
    }

    #[test]
    fn rules_view_with_members_and_their_rates() {
        use crate::fixtures::exe_rule;
        let mut app = app_with(vec![
            usage(4242, "curl", 300_000),
            usage(4243, "curl", 200_000),
            usage(4343, "wget", 50_000),
        ]);
        press(&mut app, "R");
        app.handle(Event::Rules(vec![
            exe_rule("/usr/bin/curl", 1 << 20, &[4242, 4243]),
            exe_rule("/usr/bin/steam", 5 << 20, &[]),
        ]));
        let text = screen(&mut app, 100, 8);
        assert!(
            text.contains("488.28KB/s"),
            "the two curls' 500 000 B/s together: {text}"
        );
        insta::assert_snapshot!(text);
        // a rule with more members than fit: as many as fit, then how many more
        let many: Vec<u32> = (4242..4242 + 400).collect();
        app.handle(Event::Rules(vec![exe_rule(
            "/usr/bin/curl",
            1 << 20,
            &many,
        )]));
        let text = screen(&mut app, 100, 8);
        let line = text.lines().nth(6).unwrap_or_default();
        assert!(
            line.contains(": 4242 curl, 4243 curl, 4244, ") && line.contains(", +394 more "),
            "{line}"
        );
        app.handle(Event::Resize(80, 24));
        app.handle(Event::Rules(Vec::new()));
        insta::assert_snapshot!("rules_view_empty_at_80x24", screen(&mut app, 80, 24));
    }

    #[test]
    fn history_of_today_a_week_and_a_month() {
        use crate::fixtures::history_rows;
        use crate::history::HistoryRange;
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        press(&mut app, "u");
        let reading = screen(&mut app, 80, 24);
        assert!(reading.contains("reading…"), "{reading}");
        app.handle(Event::History(history_rows(HistoryRange::Today, 1)));
        let today = screen(&mut app, 80, 24);
        assert!(today.contains("rule downloads "), "{today}");
        insta::assert_snapshot!("history_today", today);
        app.handle(Event::Key(key(KeyCode::Tab)));
        app.handle(Event::History(history_rows(HistoryRange::Week, 8)));
        press(&mut app, "j");
        let week = screen(&mut app, 80, 24);
        assert!(week.contains("rule downloads: by UTC day"), "{week}");
        insta::assert_snapshot!("history_week_wget_selected", week);
        app.handle(Event::Key(key(KeyCode::Tab)));
        app.handle(Event::History(history_rows(HistoryRange::Month, 31)));
        insta::assert_snapshot!("history_month", screen(&mut app, 80, 24));
    }

    #[test]
    fn history_empty_missing_and_unreadable_say_so_in_one_line() {
        use crate::history::{HistoryAnswer, HistoryRange};
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        press(&mut app, "u");
        app.handle(Event::History(HistoryAnswer::Rows {
            range: HistoryRange::Today,
            since: 0,
            until: 0,
            note: None,
            apps: Vec::new(),
        }));
        let empty = screen(&mut app, 80, 6);
        assert!(empty.contains("nothing recorded today (UTC)"), "{empty}");
        app.handle(Event::History(HistoryAnswer::Missing {
            path: "/var/lib/chadthrottle/usage.db".into(),
        }));
        insta::assert_snapshot!("history_missing", screen(&mut app, 160, 6));
        app.handle(Event::History(HistoryAnswer::Unreadable {
            path: "/var/lib/chadthrottle/usage.db".into(),
            error: "unable to open database file".into(),
        }));
        insta::assert_snapshot!("history_unreadable", screen(&mut app, 100, 6));
    }

    #[test]
    fn help() {
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        press(&mut app, "h");
        insta::assert_snapshot!(screen(&mut app, 80, 24));
    }

    #[test]
    fn graph_with_the_limit_line() {
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        app.handle(Event::Key(key(KeyCode::Char('t'))));
        press(&mut app, "2M");
        app.handle(Event::Key(key(KeyCode::Enter)));
        press(&mut app, "g");
        insta::assert_snapshot!(screen(&mut app, 80, 20));
    }

    #[test]
    fn read_only_banner_and_refusal() {
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        app.read_only = Some("CAP_BPF missing: run with sudo".into());
        press(&mut app, "t");
        insta::assert_snapshot!(screen(&mut app, 100, 6));
    }

    #[test]
    fn detail_tabs() {
        let mut app = crate::fixtures::app_with_connections();
        app.handle(Event::Key(key(KeyCode::Enter)));
        app.handle(Event::Details(Some(
            chadthrottle_core::usage::ProcessDetails {
                pid: 4242,
                cmdline: "curl -O https://example.org/big.iso".into(),
                exe: "/usr/bin/curl".into(),
                cwd: "/home/chad".into(),
                user: "chad".into(),
                memory: 12 << 20,
                threads: 3,
            },
        )));
        let mut screens = Vec::new();
        for tab in Tab::ALL {
            app.mode = Mode::Detail(tab);
            screens.push(screen(&mut app, 110, 14));
        }
        insta::assert_snapshot!(screens.join("\n"));
    }

    #[test]
    fn backends_screen_says_why_not() {
        use chadthrottle_core::PerDirection;
        use chadthrottle_core::backend::BackendDescriptor;
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        app.handle(Event::Backends(vec![(
            BackendDescriptor {
                name: "policer",
                priority: 10,
                directions: PerDirection {
                    up: true,
                    down: true,
                },
                summary: "eBPF token buckets per process",
            },
            Availability::Unavailable("CAP_BPF missing: run with sudo".into()),
        )]));
        press(&mut app, "b");
        insta::assert_snapshot!(screen(&mut app, 100, 8));
    }

    #[test]
    fn backends_screen_names_what_an_older_kernel_lacks() {
        use chadthrottle_core::kernel_floor::{Degraded, WITHOUT_COARSE_CLOCK};
        let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
        press(&mut app, "b");
        let text = screen(&mut app, 160, 12);
        assert!(!text.contains("does without"), "{text}");
        app.handle(Event::Degraded(Degraded {
            release: "5.10".into(),
            without: vec![WITHOUT_COARSE_CLOCK],
        }));
        let text = screen(&mut app, 160, 12);
        assert!(
            text.contains("on this kernel (5.10) the datapath does without:")
                && text.contains("bpf_ktime_get_coarse_ns (Linux 5.11): the accounting reads"),
            "{text}"
        );
    }

    #[test]
    fn the_connection_list_starts_at_its_scroll() {
        let mut app = crate::fixtures::app_with_connections();
        app.handle(Event::Key(key(KeyCode::Enter)));
        app.handle(Event::Key(key(KeyCode::Char('2'))));
        app.detail_offset = 1;
        let text = screen(&mut app, 110, 8);
        assert!(
            !text.contains("93.184.216.34") && text.contains("192.168.1.1:53"),
            "{text}"
        );
    }

    #[test]
    fn no_color_uses_no_colors() {
        let styled = |color: bool| {
            let mut app = app_with(vec![usage(4242, "curl", 1 << 20)]);
            app.color = color;
            app.handle(Event::Resize(100, 6));
            let mut terminal = Terminal::new(TestBackend::new(100, 6)).unwrap();
            terminal.draw(|frame| draw(frame, &app)).unwrap();
            let buffer = terminal.backend().buffer().clone();
            buffer.content().iter().any(|cell| {
                cell.fg != ratatui::style::Color::Reset || cell.bg != ratatui::style::Color::Reset
            })
        };
        assert!(styled(true), "colors are used by default");
        assert!(
            !styled(false),
            "NO_COLOR: no foreground or background color anywhere"
        );
    }
}
