//! The History view's keys (`u` opens it): `↑`/`↓` select an application, `Tab` cycles
//! the range (today, 7 days, 30 days), `u`/`Esc`/`q` go back. Opening it and changing
//! the range ask the runner to read the database.

use crate::app::App;
use crate::event::Effect;
use crate::mode::Mode;
use ratatui::crossterm::event::{KeyCode, KeyEvent};

/// `u`: opens the view on the range it was left on, read anew.
pub fn open(app: &mut App) -> Vec<Effect> {
    app.mode = Mode::History;
    app.history.answer = None;
    vec![Effect::ReadHistory(app.history.range)]
}

pub fn handle_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    match key.code {
        KeyCode::Esc | KeyCode::Char('q' | 'u') => app.mode = Mode::Normal,
        KeyCode::Down | KeyCode::Char('j') => app.history.move_selection(1),
        KeyCode::Up | KeyCode::Char('k') => app.history.move_selection(-1),
        KeyCode::PageDown => app.history.move_selection(10),
        KeyCode::PageUp => app.history.move_selection(-10),
        KeyCode::Tab => return vec![Effect::ReadHistory(app.history.next_range())],
        _ => {}
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use crate::event::{Effect, Event};
    use crate::fixtures::{app_with, usage};
    use crate::history::HistoryRange;
    use crate::keys::key;
    use crate::mode::Mode;
    use ratatui::crossterm::event::KeyCode;

    #[test]
    fn u_reads_the_range_and_tab_reads_the_next_one() {
        let mut app = app_with(vec![usage(7, "curl", 100)]);
        let press = |app: &mut crate::App, code| app.handle(Event::Key(key(code)));
        assert_eq!(
            press(&mut app, KeyCode::Char('u')),
            vec![Effect::ReadHistory(HistoryRange::Today)]
        );
        assert_eq!(app.mode, Mode::History);
        assert_eq!(
            press(&mut app, KeyCode::Tab),
            vec![Effect::ReadHistory(HistoryRange::Week)]
        );
        assert!(press(&mut app, KeyCode::Esc).is_empty());
        assert_eq!(app.mode, Mode::Normal);
        // it reopens on the range it was left on
        assert_eq!(
            press(&mut app, KeyCode::Char('u')),
            vec![Effect::ReadHistory(HistoryRange::Week)]
        );
    }
}
