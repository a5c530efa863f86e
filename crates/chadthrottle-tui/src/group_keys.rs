//! The keys of the table grouped by application: `a` groups or lists processes again;
//! `→`/`+` open the selected application, `←`/`-` close it (on one of its processes too,
//! the selection moving up to its row), `Space`, `Enter` and a second click open or close
//! it.

use crate::app::App;
use crate::grouping::Line;

/// `a`: groups the table by application, or lists processes again.
pub fn toggle_grouping(app: &mut App) {
    app.toggle_grouping();
    let text = match app.grouping {
        Some(_) => "grouped by application (→ opens one, ← closes it)",
        None => "one row per process",
    };
    app.say(text, false);
}

/// Opens (`Some(true)`), closes (`Some(false)`) or toggles (`None`) the application of
/// the selected row; whether the key did anything (`Enter` on a process row opens its
/// detail instead). Closing from a process row selects its application's row.
pub fn open(app: &mut App, open: Option<bool>) -> bool {
    let Some(line) = app.selected_line() else {
        return false;
    };
    let Some(grouping) = &mut app.grouping else {
        return false;
    };
    let key = grouping.application_at(line).key.clone();
    let open = match (line, open) {
        (Line::App(_), Some(open)) => open,
        (Line::App(_), None) => !grouping.is_expanded(&key),
        (Line::Process { .. }, Some(false)) => {
            grouping.selected_app = Some(key.clone());
            false
        }
        (Line::Process { .. }, _) => return false,
    };
    grouping.set_expanded(&key, open);
    app.refresh();
    true
}

#[cfg(test)]
mod tests {
    use crate::event::{Effect, Event};
    use crate::fixtures::app_with_applications;
    use crate::grouping::Line;
    use crate::mode::Mode;
    use chadthrottle_core::ProcessRef;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    fn press(app: &mut crate::App, code: KeyCode) -> Vec<Effect> {
        app.handle(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    fn selected_pid(app: &crate::App) -> Option<u32> {
        app.selected_process().map(|p| p.pid)
    }

    #[test]
    fn a_groups_the_table_into_closed_applications_busiest_first() {
        let mut app = app_with_applications();
        press(&mut app, KeyCode::Char('a'));
        let grouping = app.grouping.as_ref().expect("grouped");
        let names: Vec<&str> = grouping
            .applications
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(names, ["firefox", "curl", "downloads", "kthreadd"]);
        assert_eq!(app.row_count(), 4, "closed: one line each");
        assert_eq!(app.selected_line(), Some(Line::App(0)));
        assert_eq!(
            selected_pid(&app),
            Some(10),
            "the row stands for its first process"
        );
        press(&mut app, KeyCode::Char('a'));
        assert!(app.grouping.is_none());
        assert_eq!(app.row_count(), 5);
        assert_eq!(
            selected_pid(&app),
            Some(10),
            "the selection stays on its process"
        );
    }

    #[test]
    fn right_opens_left_closes_and_the_selection_walks_the_lines() {
        let mut app = app_with_applications();
        press(&mut app, KeyCode::Char('a'));
        press(&mut app, KeyCode::Right);
        assert_eq!(app.row_count(), 6, "firefox's two processes under it");
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Down);
        assert_eq!(
            app.selected_line(),
            Some(Line::Process { app: 0, member: 1 })
        );
        assert_eq!(selected_pid(&app), Some(11));
        // a reading later, the selection is still on process 11
        app.refresh();
        assert_eq!(selected_pid(&app), Some(11));
        press(&mut app, KeyCode::Left);
        assert_eq!(
            app.selected_line(),
            Some(Line::App(0)),
            "up to its application"
        );
        assert_eq!(app.row_count(), 4, "closed");
        press(&mut app, KeyCode::End);
        assert_eq!(app.selected_line(), Some(Line::App(3)));
        assert_eq!(selected_pid(&app), Some(2));
        press(&mut app, KeyCode::Char(' '));
        assert_eq!(app.row_count(), 5);
        press(&mut app, KeyCode::Char(' '));
        assert_eq!(app.row_count(), 4);
    }

    #[test]
    fn enter_opens_an_application_and_a_process_rows_detail() {
        let mut app = app_with_applications();
        press(&mut app, KeyCode::Char('a'));
        assert!(press(&mut app, KeyCode::Enter).is_empty());
        assert_eq!(app.row_count(), 6, "Enter opened firefox");
        assert_eq!(app.mode, Mode::Normal);
        press(&mut app, KeyCode::Down);
        let effects = press(&mut app, KeyCode::Enter);
        assert_eq!(
            effects,
            [Effect::Inspect(ProcessRef {
                pid: 10,
                start_time: 1
            })]
        );
    }

    #[test]
    fn throttling_an_application_row_throttles_its_first_process() {
        let mut app = app_with_applications();
        press(&mut app, KeyCode::Char('a'));
        press(&mut app, KeyCode::Down);
        assert_eq!(app.selected_line(), Some(Line::App(1)));
        press(&mut app, KeyCode::Char('t'));
        let Mode::Throttle(dialog) = &app.mode else {
            panic!("the throttle dialog: {:?}", app.mode);
        };
        assert_eq!(dialog.process.pid, 20);
    }

    #[test]
    fn a_rule_arriving_regroups_and_the_selection_follows_its_process() {
        let mut app = app_with_applications();
        press(&mut app, KeyCode::Char('a'));
        press(&mut app, KeyCode::Down);
        assert_eq!(selected_pid(&app), Some(20), "curl's row");
        let mut membership = app.membership.clone();
        let limit = chadthrottle_core::usage::LimitRates {
            up: Some(1 << 10),
            down: None,
        };
        membership.rules.insert(
            ProcessRef {
                pid: 20,
                start_time: 1,
            },
            ("exe /usr/bin/curl".into(), limit),
        );
        app.take_membership(membership);
        let line = app.selected_line().expect("a selection");
        let grouping = app.grouping.as_ref().expect("grouped");
        let application = grouping.application_at(line);
        assert_eq!(application.rule.as_deref(), Some("exe /usr/bin/curl"));
        assert_eq!(application.limit, Some(limit));
        assert_eq!(selected_pid(&app), Some(20));
    }

    #[test]
    fn grouped_the_filter_finds_processes_by_their_applications_name_too() {
        let mut app = app_with_applications();
        app.filter = "download".into();
        app.refresh();
        assert!(app.rows.is_empty(), "no process is named so");
        press(&mut app, KeyCode::Char('a'));
        let pids: Vec<u32> = app.rows.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [30], "wget, under the rule downloads");
        assert_eq!(app.row_count(), 1);
    }
}
