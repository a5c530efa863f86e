//! The rule side of the UI: the rules view's keys (select, lift), what the dialog asks
//! for when a rule target is chosen, and the runner's answers (the targets a process
//! falls under, the rules in force) taken into the state.

use crate::app::App;
use crate::dialog::ThrottleDialog;
use crate::event::Effect;
use crate::mode::Mode;
use crate::target_choice::{TargetChoice, TargetOffer};
use chadthrottle_core::ProcessRef;
use chadthrottle_core::rule_request::RuleStatus;
use ratatui::crossterm::event::{KeyCode, KeyEvent};

/// `R`: the rules view, listed afresh.
pub fn open(app: &mut App) -> Vec<Effect> {
    app.mode = Mode::Rules;
    vec![Effect::ListRules]
}

pub fn handle_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    match key.code {
        KeyCode::Esc | KeyCode::Char('q' | 'R') => app.mode = Mode::Normal,
        KeyCode::Down | KeyCode::Char('j') => move_selection(app, 1),
        KeyCode::Up | KeyCode::Char('k') => move_selection(app, -1),
        KeyCode::Char('r') | KeyCode::Delete => return lift_selected(app),
        _ => {}
    }
    Vec::new()
}

fn move_selection(app: &mut App, delta: isize) {
    let last = app.rules.len().saturating_sub(1) as isize;
    app.rule_selected = (app.rule_selected as isize + delta).clamp(0, last) as usize;
}

/// `r` in the rules view: the selected rule is removed (from the kernel, as `unlimit`
/// removes it; a rule the rules file holds comes back at the next `apply`), and the list
/// read again.
fn lift_selected(app: &mut App) -> Vec<Effect> {
    if app.refuse_if_read_only() {
        return Vec::new();
    }
    let Some(rule) = app.rules.get(app.rule_selected) else {
        app.say("no rule to remove", true);
        return Vec::new();
    };
    vec![
        Effect::LiftRule(rule.spec.target.clone()),
        Effect::ListRules,
    ]
}

/// Enter in the dialog on a rule target: that rule set (both fields empty: removed).
pub fn set_rule(dialog: &ThrottleDialog, up: Option<u64>, down: Option<u64>) -> Vec<Effect> {
    let TargetChoice::Rule(offer) = dialog.target() else {
        return Vec::new();
    };
    vec![Effect::SetRule {
        target: offer.target.clone(),
        up,
        down,
        each: dialog.each,
        save: offer.saved,
    }]
}

/// The runner's answer to `OfferTargets`: into the dialog, if it is still open on that
/// process.
pub fn offered(app: &mut App, process: ProcessRef, offers: Vec<TargetOffer>) {
    let pid_limited =
        app.snapshot().processes.iter().any(|p| {
            p.pid == process.pid && p.start_time == process.start_time && p.limit.is_some()
        });
    if let Mode::Throttle(dialog) = &mut app.mode {
        if dialog.process == process {
            dialog.offer(offers, pid_limited);
        }
    }
}

/// The runner's answer to `ListRules`; the selection stays on its rule if it is still
/// there, else on the same line.
pub fn listed(app: &mut App, rules: Vec<RuleStatus>) {
    let selected = app
        .rules
        .get(app.rule_selected)
        .map(|r| r.spec.name.clone());
    let kept = selected.and_then(|name| rules.iter().position(|r| r.spec.name == name));
    app.rule_selected = kept.unwrap_or(app.rule_selected.min(rules.len().saturating_sub(1)));
    app.rules = rules;
}

#[cfg(test)]
mod tests {
    use crate::event::{Effect, Event};
    use crate::fixtures::{app_with, exe_rule, reading, usage};
    use crate::mode::Mode;
    use crate::target_choice::{TargetChoice, TargetOffer};
    use chadthrottle_core::ProcessRef;
    use chadthrottle_core::rule_target::RuleTarget;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use std::collections::HashMap;

    const CURL: ProcessRef = ProcessRef {
        pid: 7,
        start_time: 1,
    };

    fn press(app: &mut crate::App, code: KeyCode) -> Vec<Effect> {
        app.handle(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    fn offers() -> Vec<TargetOffer> {
        vec![
            TargetOffer {
                target: RuleTarget::Tree(7),
                held: None,
                each: false,
                saved: false,
            },
            TargetOffer {
                target: RuleTarget::Exe("/usr/bin/curl".into()),
                held: None,
                each: false,
                saved: true,
            },
        ]
    }

    #[test]
    fn the_dialog_asks_for_targets_and_sets_the_chosen_rule() {
        let mut app = app_with(vec![usage(7, "curl", 100)]);
        assert_eq!(
            press(&mut app, KeyCode::Char('t')),
            vec![Effect::OfferTargets(CURL)]
        );
        // an answer for another process (the selection moved on) is not taken
        let other = ProcessRef {
            pid: 8,
            start_time: 1,
        };
        app.handle(Event::Targets {
            process: other,
            offers: offers(),
        });
        let Mode::Throttle(dialog) = &app.mode else {
            panic!("the dialog is open: {:?}", app.mode)
        };
        assert_eq!(dialog.targets.len(), 1);
        app.handle(Event::Targets {
            process: CURL,
            offers: offers(),
        });
        press(&mut app, KeyCode::Right);
        press(&mut app, KeyCode::Right);
        let Mode::Throttle(dialog) = &app.mode else {
            panic!("still open")
        };
        assert_eq!(
            dialog.target().rule(),
            Some(&RuleTarget::Exe("/usr/bin/curl".into()))
        );
        for c in "2M".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        // Space: each process its own 2M
        press(&mut app, KeyCode::Char(' '));
        assert_eq!(
            press(&mut app, KeyCode::Enter),
            vec![Effect::SetRule {
                target: RuleTarget::Exe("/usr/bin/curl".into()),
                up: None,
                down: Some(2 << 20),
                each: true,
                save: true,
            }]
        );
        assert_eq!(app.mode, Mode::Normal);
        assert!(
            app.rows[0].limit.is_none(),
            "a rule is shown when the kernel lists it, not before"
        );
    }

    #[test]
    fn a_process_under_a_rule_opens_the_dialog_on_that_rule() {
        let mut app = app_with(vec![usage(7, "curl", 100)]);
        press(&mut app, KeyCode::Char('t'));
        let mut held = offers();
        held[1].held = Some(chadthrottle_core::usage::LimitRates {
            up: Some(1 << 20),
            down: None,
        });
        app.handle(Event::Targets {
            process: CURL,
            offers: held,
        });
        let Mode::Throttle(dialog) = &app.mode else {
            panic!("open")
        };
        assert!(matches!(dialog.target(), TargetChoice::Rule(o) if o.saved));
        assert_eq!(
            (dialog.download.as_str(), dialog.upload.as_str()),
            ("", "1MB")
        );
        // emptied: the rule is removed
        press(&mut app, KeyCode::Tab);
        for _ in 0..3 {
            press(&mut app, KeyCode::Backspace);
        }
        assert_eq!(
            press(&mut app, KeyCode::Enter),
            vec![Effect::SetRule {
                target: RuleTarget::Exe("/usr/bin/curl".into()),
                up: None,
                down: None,
                each: false,
                save: true,
            }]
        );
    }

    #[test]
    fn the_rules_view_lists_follows_and_lifts_the_selected_rule() {
        let processes = vec![usage(7, "curl", 100), usage(8, "wget", 100)];
        let mut app = app_with(processes.clone());
        assert_eq!(press(&mut app, KeyCode::Char('R')), vec![Effect::ListRules]);
        assert_eq!(app.mode, Mode::Rules);
        let rules = vec![
            exe_rule("/usr/bin/curl", 1 << 20, &[7]),
            exe_rule("/usr/bin/wget", 2 << 20, &[8]),
        ];
        app.handle(Event::Rules(rules.clone()));
        press(&mut app, KeyCode::Char('j'));
        press(&mut app, KeyCode::Char('j'));
        assert_eq!(app.rule_selected, 1, "clamped to the last rule");
        // a new reading in the view asks for the rules again
        let effects = app.handle(Event::Update {
            reading: reading(&processes, 3),
            limits: HashMap::new(),
        });
        assert_eq!(effects, vec![Effect::ListRules]);
        // the list comes back in another order: the selection stays on its rule
        app.handle(Event::Rules(vec![rules[1].clone(), rules[0].clone()]));
        assert_eq!(app.rule_selected, 0);
        assert_eq!(
            press(&mut app, KeyCode::Char('r')),
            vec![
                Effect::LiftRule(RuleTarget::Exe("/usr/bin/wget".into())),
                Effect::ListRules
            ]
        );
        app.handle(Event::Rules(vec![rules[0].clone()]));
        assert_eq!(app.rule_selected, 0, "the next rule takes its line");
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.mode, Mode::Normal);
        let effects = app.handle(Event::Update {
            reading: reading(&processes, 4),
            limits: HashMap::new(),
        });
        assert!(effects.is_empty(), "out of the view, no listing");
    }

    #[test]
    fn lifting_is_refused_read_only_and_without_rules() {
        let mut app = app_with(vec![usage(7, "curl", 100)]);
        press(&mut app, KeyCode::Char('R'));
        assert!(press(&mut app, KeyCode::Char('r')).is_empty());
        assert_eq!(
            app.message.as_ref().map(|m| (m.text.as_str(), m.error)),
            Some(("no rule to remove", true))
        );
        app.handle(Event::Rules(vec![exe_rule("/usr/bin/curl", 1024, &[7])]));
        app.read_only = Some("CAP_BPF missing".into());
        assert!(press(&mut app, KeyCode::Delete).is_empty());
        assert!(
            app.message
                .as_ref()
                .is_some_and(|m| m.text.contains("CAP_BPF"))
        );
    }
}
