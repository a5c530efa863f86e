//! Keys and mouse: each handler changes the app and returns the effects it needs; nothing
//! here touches the kernel. Clicks are hit-tested against the app's layout, the same
//! rectangles the screens draw into.

use crate::app::{App, process_ref};
use crate::dialog::ThrottleDialog;
use crate::event::Effect;
use crate::group_keys;
use crate::history_keys;
use crate::layout::TableTarget;
use crate::mode::{Mode, Tab};
use crate::rules_keys;
use chadthrottle_core::usage::LimitRates;
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

pub fn handle_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
        return vec![Effect::Quit];
    }
    match app.mode.clone() {
        Mode::Normal => normal(app, key),
        Mode::Filter => {
            filter(app, key);
            Vec::new()
        }
        Mode::Throttle(dialog) => throttle(app, dialog, key),
        Mode::Help | Mode::Graph | Mode::Backends => {
            if matches!(
                key.code,
                KeyCode::Esc | KeyCode::Char('q' | 'g' | 'h' | '?' | 'b')
            ) {
                app.mode = Mode::Normal;
            }
            Vec::new()
        }
        Mode::Detail(tab) => {
            detail(app, tab, key);
            Vec::new()
        }
        Mode::Rules => rules_keys::handle_key(app, key),
        Mode::History => history_keys::handle_key(app, key),
    }
}

fn normal(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let page = app.visible_rows().max(1) as isize;
    match key.code {
        KeyCode::Char('q') | KeyCode::Esc => return vec![Effect::Quit],
        KeyCode::Down | KeyCode::Char('j') => app.move_selection(1),
        KeyCode::Up | KeyCode::Char('k') => app.move_selection(-1),
        KeyCode::PageDown => app.move_selection(page),
        KeyCode::PageUp => app.move_selection(-page),
        KeyCode::Home => app.select_row(0),
        KeyCode::End => app.select_row(app.row_count().saturating_sub(1)),
        KeyCode::Char('s') => {
            app.sort = app.sort.next();
            app.frozen = None;
            app.refresh();
            app.say(format!("sorted by {}", app.sort.title()), false);
        }
        KeyCode::Char('f') => {
            app.frozen = match app.frozen {
                Some(_) => None,
                None => Some(app.rows.iter().map(process_ref).collect()),
            };
            let state = if app.frozen.is_some() {
                "frozen"
            } else {
                "live"
            };
            app.say(format!("order {state}"), false);
            app.refresh();
        }
        KeyCode::Char('/') => app.mode = Mode::Filter,
        KeyCode::Char('h' | '?') => app.mode = Mode::Help,
        KeyCode::Char('g') if app.selected.is_some() => app.mode = Mode::Graph,
        KeyCode::Char('t') => return open_throttle(app),
        KeyCode::Char('R') => return rules_keys::open(app),
        KeyCode::Char('u') => return history_keys::open(app),
        // on an application row, Enter opens or closes it (the guard does it); on a
        // process, its detail
        KeyCode::Enter if !group_keys::open(app, None) => return open_detail(app),
        KeyCode::Char('a') => group_keys::toggle_grouping(app),
        KeyCode::Right | KeyCode::Char('+') => _ = group_keys::open(app, Some(true)),
        KeyCode::Left | KeyCode::Char('-') => _ = group_keys::open(app, Some(false)),
        KeyCode::Char(' ') => _ = group_keys::open(app, None),
        KeyCode::Char('b') => app.mode = Mode::Backends,
        KeyCode::Char('i') => {
            app.next_interface();
            let shown = app.interface.as_deref().unwrap_or("all interfaces");
            app.say(format!("showing {shown}"), false);
        }
        KeyCode::Char('l') => {
            app.traffic = app.traffic.next();
            app.refresh();
            app.say(format!("showing {}", app.traffic.title()), false);
        }
        KeyCode::Char('r') => return remove_limit(app),
        _ => {}
    }
    Vec::new()
}

/// Opens the dialog on the process alone and asks the runner for the rule targets it
/// falls under, which join the dialog when they come.
fn open_throttle(app: &mut App) -> Vec<Effect> {
    if app.refuse_if_read_only() {
        return Vec::new();
    }
    let Some(p) = app.selected_process() else {
        return Vec::new();
    };
    if p.exited {
        app.say(format!("PID {} has exited", p.pid), true);
        return Vec::new();
    }
    let process = process_ref(p);
    app.mode = Mode::Throttle(ThrottleDialog::new(process, p.name.clone(), p.limit));
    vec![Effect::OfferTargets(process)]
}

fn open_detail(app: &mut App) -> Vec<Effect> {
    let Some(p) = app.selected_process() else {
        return Vec::new();
    };
    let process = process_ref(p);
    app.details = None;
    app.detail_offset = 0;
    app.mode = Mode::Detail(Tab::Overview);
    vec![Effect::Inspect(process)]
}

/// Scrolls the detail's connection list by `delta` rows (clamped to the list).
fn scroll_detail(app: &mut App, delta: isize) {
    let pid = app.selected_process().map(|p| p.pid);
    let count = app
        .snapshot()
        .connections
        .iter()
        .filter(|c| Some(c.pid) == pid)
        .count();
    let at = app.detail_offset as isize + delta;
    app.detail_offset = at.clamp(0, count.saturating_sub(1) as isize) as usize;
}

fn detail(app: &mut App, tab: Tab, key: KeyEvent) {
    match key.code {
        KeyCode::Down | KeyCode::Char('j') => return scroll_detail(app, 1),
        KeyCode::Up | KeyCode::Char('k') => return scroll_detail(app, -1),
        KeyCode::PageDown => return scroll_detail(app, 10),
        KeyCode::PageUp => return scroll_detail(app, -10),
        _ => {}
    }
    app.mode = match key.code {
        KeyCode::Esc | KeyCode::Char('q') => Mode::Normal,
        KeyCode::Tab | KeyCode::Right | KeyCode::Char('l') => Mode::Detail(tab.step(1)),
        KeyCode::BackTab | KeyCode::Left | KeyCode::Char('h') => Mode::Detail(tab.step(-1)),
        KeyCode::Char(c @ '1'..='4') => Mode::Detail(Tab::ALL[usize::from(c as u8 - b'1')]),
        _ => Mode::Detail(tab),
    };
}

fn remove_limit(app: &mut App) -> Vec<Effect> {
    if app.refuse_if_read_only() {
        return Vec::new();
    }
    let Some(p) = app.selected_process() else {
        return Vec::new();
    };
    if p.limit.is_none() {
        let text = format!("PID {} ({}) has no limit", p.pid, p.name);
        app.say(text, true);
        return Vec::new();
    }
    let (process, name) = (process_ref(p), p.name.clone());
    app.show_limit(process, None);
    vec![Effect::ClearLimit { process, name }]
}

fn filter(app: &mut App, key: KeyEvent) {
    match key.code {
        KeyCode::Enter => app.mode = Mode::Normal,
        KeyCode::Esc => {
            app.filter.clear();
            app.mode = Mode::Normal;
        }
        KeyCode::Backspace => {
            app.filter.pop();
        }
        KeyCode::Char(c) => app.filter.push(c),
        _ => return,
    }
    app.refresh();
}

fn throttle(app: &mut App, mut dialog: ThrottleDialog, key: KeyEvent) -> Vec<Effect> {
    match key.code {
        KeyCode::Esc => {
            app.mode = Mode::Normal;
            return Vec::new();
        }
        KeyCode::Tab | KeyCode::BackTab | KeyCode::Up | KeyCode::Down => dialog.switch_focus(),
        KeyCode::Left => dialog.step_target(-1),
        KeyCode::Right => dialog.step_target(1),
        // no rate has a space: it switches a rule's mode
        KeyCode::Char(' ') if dialog.target().rule().is_some() => dialog.each = !dialog.each,
        KeyCode::Backspace => {
            dialog.field_mut().pop();
        }
        KeyCode::Char(c) => dialog.field_mut().push(c),
        KeyCode::Enter => match dialog.rates() {
            Ok((up, down)) if dialog.target().rule().is_some() => {
                app.mode = Mode::Normal;
                return rules_keys::set_rule(&dialog, up, down);
            }
            Ok((up, down)) => {
                app.mode = Mode::Normal;
                let limit = (up.is_some() || down.is_some()).then_some(LimitRates { up, down });
                app.show_limit(dialog.process, limit);
                return vec![match limit {
                    Some(_) => Effect::SetLimit {
                        process: dialog.process,
                        name: dialog.name,
                        up,
                        down,
                    },
                    None => Effect::ClearLimit {
                        process: dialog.process,
                        name: dialog.name,
                    },
                }];
            }
            Err(error) => {
                app.say(error, true);
            }
        },
        _ => {}
    }
    app.mode = Mode::Throttle(dialog);
    Vec::new()
}

/// Click selects a row, sorts by a header or switches a tab; the wheel scrolls.
pub fn handle_mouse(app: &mut App, mouse: MouseEvent) {
    let clicked = matches!(mouse.kind, MouseEventKind::Down(MouseButton::Left));
    match app.mode {
        Mode::Detail(_) => match mouse.kind {
            MouseEventKind::ScrollDown => scroll_detail(app, 3),
            MouseEventKind::ScrollUp => scroll_detail(app, -3),
            _ if clicked => {
                if let Some(tab) = app.layout().tab_at(mouse.column, mouse.row) {
                    app.mode = Mode::Detail(tab);
                }
            }
            _ => {}
        },
        Mode::Normal => match mouse.kind {
            MouseEventKind::ScrollDown => app.move_selection(3),
            MouseEventKind::ScrollUp => app.move_selection(-3),
            _ if clicked => match app.layout().table_target(mouse.column, mouse.row) {
                Some(TableTarget::Header(column)) => {
                    app.sort = column;
                    app.frozen = None;
                    app.refresh();
                }
                Some(TableTarget::Row(row)) => {
                    // a click on the selected application's row opens or closes it
                    let again = app.selected_index() == Some(app.offset + row);
                    app.select_row(app.offset + row);
                    if again {
                        group_keys::open(app, None);
                    }
                }
                None => {}
            },
            _ => {}
        },
        _ => {}
    }
}

#[cfg(test)]
pub(crate) fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::TrafficView;
    use crate::fixtures::{app_with, usage};
    use crate::sort::Column;
    use ratatui::crossterm::event::MouseEvent;

    #[test]
    fn quit_keys() {
        for code in [KeyCode::Char('q'), KeyCode::Esc] {
            let mut app = app_with(vec![]);
            assert_eq!(handle_key(&mut app, key(code)), vec![Effect::Quit]);
        }
        let mut app = app_with(vec![]);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(handle_key(&mut app, ctrl_c), vec![Effect::Quit]);
    }

    #[test]
    fn selection_follows_the_process_when_the_table_resorts() {
        let mut app = app_with(vec![
            usage(1, "a", 300),
            usage(2, "b", 200),
            usage(3, "c", 100),
        ]);
        handle_key(&mut app, key(KeyCode::Down));
        assert_eq!(app.selected.unwrap().pid, 2);
        // sort by PID descending? no: by name ascending keeps b second; by PID also
        app.sort = Column::UpRate;
        app.refresh();
        assert_eq!(app.selected.unwrap().pid, 2);
        handle_key(&mut app, key(KeyCode::Char('s'))); // next column: down total
        assert_eq!(app.selected.unwrap().pid, 2, "still on the same process");
    }

    #[test]
    fn throttle_dialog_applies_valid_input_and_refuses_invalid() {
        let mut app = app_with(vec![usage(7, "curl", 100)]);
        handle_key(&mut app, key(KeyCode::Char('t')));
        assert!(matches!(app.mode, Mode::Throttle(_)));
        for c in "5X".chars() {
            handle_key(&mut app, key(KeyCode::Char(c)));
        }
        assert!(handle_key(&mut app, key(KeyCode::Enter)).is_empty());
        assert!(app.message.as_ref().unwrap().error);
        assert!(matches!(app.mode, Mode::Throttle(_)), "stays open");
        handle_key(&mut app, key(KeyCode::Backspace));
        handle_key(&mut app, key(KeyCode::Backspace));
        for c in "1M".chars() {
            handle_key(&mut app, key(KeyCode::Char(c)));
        }
        let effects = handle_key(&mut app, key(KeyCode::Enter));
        assert_eq!(
            effects,
            vec![Effect::SetLimit {
                process: chadthrottle_core::ProcessRef {
                    pid: 7,
                    start_time: 1
                },
                name: "curl".into(),
                up: None,
                down: Some(1 << 20),
            }]
        );
        assert_eq!(app.mode, Mode::Normal);
        assert_eq!(
            app.rows[0].limit.unwrap().down,
            Some(1 << 20),
            "shown at once"
        );
        // r removes it
        let effects = handle_key(&mut app, key(KeyCode::Char('r')));
        assert!(matches!(effects[..], [Effect::ClearLimit { .. }]));
        assert!(app.rows[0].limit.is_none());
    }

    #[test]
    fn esc_cancels_the_dialog_and_read_only_refuses_it() {
        let mut app = app_with(vec![usage(7, "curl", 100)]);
        handle_key(&mut app, key(KeyCode::Char('t')));
        handle_key(&mut app, key(KeyCode::Char('1')));
        assert!(handle_key(&mut app, key(KeyCode::Esc)).is_empty());
        assert_eq!(app.mode, Mode::Normal);
        assert!(app.rows[0].limit.is_none());
        app.read_only = Some("CAP_BPF missing".into());
        handle_key(&mut app, key(KeyCode::Char('t')));
        assert_eq!(app.mode, Mode::Normal);
        assert!(app.message.as_ref().unwrap().text.contains("CAP_BPF"));
    }

    #[test]
    fn enter_opens_the_detail_and_asks_for_its_system_facts() {
        let mut app = app_with(vec![usage(7, "curl", 100)]);
        let effects = handle_key(&mut app, key(KeyCode::Enter));
        assert_eq!(
            effects,
            vec![Effect::Inspect(chadthrottle_core::ProcessRef {
                pid: 7,
                start_time: 1
            })]
        );
        assert_eq!(app.mode, Mode::Detail(Tab::Overview));
        handle_key(&mut app, key(KeyCode::Tab));
        assert_eq!(app.mode, Mode::Detail(Tab::Connections));
        handle_key(&mut app, key(KeyCode::BackTab));
        handle_key(&mut app, key(KeyCode::BackTab));
        assert_eq!(app.mode, Mode::Detail(Tab::System), "wraps");
        handle_key(&mut app, key(KeyCode::Char('3')));
        assert_eq!(app.mode, Mode::Detail(Tab::Traffic));
        handle_key(&mut app, key(KeyCode::Down));
        assert_eq!(
            app.detail_offset, 0,
            "one process without connections: nothing to scroll"
        );
        handle_key(&mut app, key(KeyCode::Esc));
        assert_eq!(app.mode, Mode::Normal);
    }

    #[test]
    fn traffic_view_cycles_and_hides_processes_without_such_traffic() {
        let mut app = app_with(vec![usage(7, "curl", 100)]);
        handle_key(&mut app, key(KeyCode::Char('l')));
        assert_eq!(app.traffic, TrafficView::Internet);
        assert!(
            app.rows.is_empty(),
            "no connections seen: no Internet traffic"
        );
        handle_key(&mut app, key(KeyCode::Char('l')));
        handle_key(&mut app, key(KeyCode::Char('l')));
        assert_eq!(app.rows.len(), 1);
    }

    #[test]
    fn interface_filter_keeps_processes_with_connections_on_it() {
        let mut app = crate::fixtures::app_with_connections();
        handle_key(&mut app, key(KeyCode::Char('i')));
        assert_eq!(app.interface.as_deref(), Some("eth0"));
        assert_eq!(app.rows.len(), 1);
        assert_eq!(
            app.rows[0].rx_rate,
            app.snapshot()
                .connections
                .iter()
                .map(|c| c.rx_rate)
                .sum::<u64>()
        );
        handle_key(&mut app, key(KeyCode::Char('l')));
        assert_eq!(
            app.rows[0].rx_bytes, app.rows[0].internet.rx_bytes,
            "Internet connections only"
        );
        handle_key(&mut app, key(KeyCode::Char('i')));
        assert_eq!(app.interface, None, "back to all interfaces");
    }

    #[test]
    fn filter_and_freeze() {
        let mut app = app_with(vec![usage(1, "firefox", 100), usage(2, "curl", 300)]);
        handle_key(&mut app, key(KeyCode::Char('/')));
        for c in "fire".chars() {
            handle_key(&mut app, key(KeyCode::Char(c)));
        }
        handle_key(&mut app, key(KeyCode::Enter));
        assert_eq!(app.rows.len(), 1);
        assert_eq!(app.rows[0].name, "firefox");
        handle_key(&mut app, key(KeyCode::Char('/')));
        handle_key(&mut app, key(KeyCode::Esc));
        assert_eq!(app.rows.len(), 2);
        assert_eq!(app.rows[0].pid, 2, "busiest first");
        handle_key(&mut app, key(KeyCode::Char('f')));
        app.frozen.as_ref().unwrap();
        app.sort = Column::Name;
        app.refresh();
        assert_eq!(app.rows[0].pid, 2, "frozen order kept");
    }

    fn mouse(kind: MouseEventKind, column: u16, row: u16) -> MouseEvent {
        MouseEvent {
            kind,
            column,
            row,
            modifiers: KeyModifiers::NONE,
        }
    }

    fn click(column: u16, row: u16) -> MouseEvent {
        mouse(MouseEventKind::Down(MouseButton::Left), column, row)
    }

    #[test]
    fn a_click_sorts_by_a_header_or_selects_a_row() {
        let mut app = app_with(vec![usage(1, "b", 300), usage(2, "a", 200)]);
        app.resize(100, 10);
        handle_mouse(&mut app, click(9, 0));
        assert_eq!(app.sort, Column::Name);
        assert_eq!(app.rows[0].name, "a");
        assert_eq!(app.selected.map(|s| s.pid), Some(1), "on its process");
        handle_mouse(&mut app, click(3, 1));
        assert_eq!(app.selected.map(|s| s.pid), Some(2), "the first row");
        handle_mouse(&mut app, click(3, 5));
        assert_eq!(app.selected.map(|s| s.pid), Some(2), "no row there");
    }

    #[test]
    fn a_second_click_on_an_application_row_opens_it_and_on_a_process_does_not() {
        let mut app = crate::fixtures::app_with_applications();
        handle_key(&mut app, key(KeyCode::Char('a')));
        app.resize(100, 10);
        handle_mouse(&mut app, click(3, 2));
        assert_eq!(app.selected_index(), Some(1), "curl's row selected");
        assert_eq!(app.row_count(), 4, "still closed");
        handle_mouse(&mut app, click(3, 2));
        assert_eq!(app.row_count(), 5, "curl open");
        handle_mouse(&mut app, click(3, 3));
        handle_mouse(&mut app, click(3, 3));
        assert_eq!(app.selected.map(|s| s.pid), Some(20), "curl's process");
        assert_eq!(app.row_count(), 5, "a process row is no toggle");
        handle_mouse(&mut app, click(3, 2));
        handle_mouse(&mut app, click(3, 2));
        assert_eq!(app.row_count(), 4, "curl closed");
    }

    #[test]
    fn clicking_a_tab_title_switches_to_it() {
        let mut app = crate::fixtures::app_with_connections();
        handle_key(&mut app, key(KeyCode::Enter));
        handle_mouse(&mut app, click(13, 0));
        assert_eq!(app.mode, Mode::Detail(Tab::Connections));
        handle_mouse(&mut app, click(40, 0));
        assert_eq!(app.mode, Mode::Detail(Tab::System));
        handle_mouse(&mut app, click(13, 3));
        assert_eq!(app.mode, Mode::Detail(Tab::System), "not on the tab bar");
    }

    #[test]
    fn the_wheel_scrolls_the_connection_list_within_it() {
        let mut app = crate::fixtures::app_with_connections();
        handle_key(&mut app, key(KeyCode::Enter));
        handle_key(&mut app, key(KeyCode::Char('2')));
        handle_mouse(&mut app, mouse(MouseEventKind::ScrollDown, 10, 5));
        assert_eq!(app.detail_offset, 1, "clamped to the last connection");
        handle_mouse(&mut app, mouse(MouseEventKind::ScrollUp, 10, 5));
        assert_eq!(app.detail_offset, 0);
    }
}
