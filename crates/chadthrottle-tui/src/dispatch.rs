//! The one entry point: [`App::handle`] takes every event the runner receives, hands it
//! to what owns that change (keys and mouse to `keys`, the rest to the app's state), and
//! returns the effects the runner must apply. It lives apart from the state so that the
//! state does not import the key handlers that change it.

use crate::app::App;
use crate::event::{Effect, Event};
use crate::{keys, rules_keys};

impl App {
    pub fn handle(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Key(key) => return keys::handle_key(self, key),
            Event::Mouse(mouse) => keys::handle_mouse(self, mouse),
            Event::Resize(width, height) => self.resize(width, height),
            Event::Update { reading, limits } => {
                self.ingest(reading, limits);
                // the rules view follows the kernel at the readings' pace
                if self.mode == crate::mode::Mode::Rules {
                    return vec![Effect::ListRules];
                }
            }
            Event::Membership(membership) => self.take_membership(membership),
            Event::Details(details) => self.details = details,
            Event::Backends(backends) => self.backends = backends,
            Event::Degraded(degraded) => self.degraded = degraded,
            Event::Done(Ok(text)) => self.say(text, false),
            Event::Done(Err(text)) => self.say(text, true),
            Event::Targets { process, offers } => rules_keys::offered(self, process, offers),
            Event::Rules(rules) => rules_keys::listed(self, rules),
            Event::History(answer) => self.history.take(answer),
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use crate::event::{Effect, Event};
    use crate::fixtures::{app_with, usage};
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    #[test]
    fn keys_return_their_effects_and_outcomes_show_in_the_status_bar() {
        let mut app = app_with(vec![usage(7, "curl", 100)]);
        let q = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(app.handle(Event::Key(q)), vec![Effect::Quit]);
        assert!(app.handle(Event::Done(Err("refused".into()))).is_empty());
        let message = app.message.clone().expect("a message");
        assert_eq!((message.text.as_str(), message.error), ("refused", true));
        app.handle(Event::Done(Ok("limited".into())));
        assert_eq!(app.message.map(|m| m.error), Some(false));
    }

    #[test]
    fn a_resize_keeps_the_selection_on_screen() {
        let processes = (1..=50).map(|pid| usage(pid, "p", 1000)).collect();
        let mut app = app_with(processes);
        app.select_row(40);
        app.handle(Event::Resize(80, 10));
        let shown = app.offset..app.offset + app.visible_rows();
        assert!(shown.contains(&40), "{shown:?}");
    }
}
