/*
 * printmesh: the settings page and the broker indicator in the navbar.
 *
 * Plugin messages (identifier "printmesh"), pushed by the plugin:
 *   {"broker": "connected" | "disconnected" | "misconfigured", "error"?: "..."}
 *   {"hold": {"phase": "idle" | "draining" | "held" | "busy" | "returning", "layer": n, "holder": "node/component"}}
 * The plugin re-sends its last broker state when a client connects, so a page opened
 * later still shows it.
 *
 * The settings are plugins.printmesh.* (see settings.py); the page binds to them through
 * OctoPrint's settingsViewModel. Number inputs give strings, so numbers are turned back
 * into numbers before saving, and the two lists are edited as comma-separated text.
 */
$(function () {
    var PLUGIN = "printmesh";
    var NUMBERS = [
        ["mqtt", "port"],
        ["mqtt", "keepalive"],
        ["publish", "temperature_threshold"],
        ["publish", "temperature_interval"],
        ["publish", "job_interval"],
        ["publish", "layer_interval"],
        ["safety", "margin"],
        ["safety", "max_z"],
        ["safety", "clearance"],
        ["safety", "min_feedrate"],
        ["safety", "max_feedrate"],
        ["hold", "max_hold"],
        ["hold", "confirm_timeout"],
        ["hold", "move_timeout"],
        ["hold", "return_timeout"]
    ];
    var TEXTS = [["node_id"], ["topic_root"], ["mqtt", "host"], ["discovery", "prefix"]];
    // Built when the view model is, not at load: OctoPrint defines gettext only after the plugins' scripts ran.
    function brokerStates() {
        return {
            connected: {text: gettext("Connected"), css: "text-success", icon: "fa-link"},
            disconnected: {text: gettext("Disconnected, retrying"), css: "text-error", icon: "fa-unlink"},
            misconfigured: {
                text: gettext("Not connecting: invalid settings"),
                css: "text-warning",
                icon: "fa-exclamation-triangle"
            },
            unknown: {text: gettext("Unknown"), css: "muted", icon: "fa-question-circle"}
        };
    }
    function holdPhases() {
        return {
            draining: gettext("holding: waiting for the printer"),
            held: gettext("held"),
            busy: gettext("held, moving"),
            returning: gettext("releasing: head returning")
        };
    }

    function splitList(text) {
        return _.uniq(
            _.filter(
                _.map(String(text || "").split(/[\s,;]+/), function (item) {
                    return item.trim();
                }),
                function (item) {
                    return item.length > 0;
                }
            )
        );
    }

    function PrintmeshViewModel(parameters) {
        var self = this;
        var BROKER = brokerStates();
        var HOLD = holdPhases();
        self.settingsViewModel = parameters[0];
        self.loginState = parameters[1];
        self.access = parameters[2];

        // plugins.printmesh, set before binding (the settings are loaded by then)
        self.s = undefined;

        self.broker = ko.observable("unknown");
        self.brokerError = ko.observable("");
        self.hold = ko.observable(null);

        self.brokerInfo = ko.pureComputed(function () {
            return BROKER[self.broker()] || BROKER.unknown;
        });
        self.brokerText = ko.pureComputed(function () {
            return self.brokerInfo().text;
        });
        self.brokerCss = ko.pureComputed(function () {
            return self.brokerInfo().css;
        });
        self.brokerIcon = ko.pureComputed(function () {
            return "fas " + self.brokerInfo().icon;
        });
        self.brokerTitle = ko.pureComputed(function () {
            var title = "printmesh MQTT: " + self.brokerText();
            if (self.brokerError()) {
                title += " (" + self.brokerError() + ")";
            }
            if (self.holdActive()) {
                title += "; " + self.holdText();
            }
            return title;
        });

        self.holdActive = ko.pureComputed(function () {
            var hold = self.hold();
            return !!hold && !!hold.phase && hold.phase !== "idle";
        });
        self.holdText = ko.pureComputed(function () {
            var hold = self.hold();
            if (!hold || !hold.phase || hold.phase === "idle") {
                return gettext("no hold");
            }
            var text = HOLD[hold.phase] || hold.phase;
            if (hold.layer !== undefined && hold.layer !== null) {
                text += " " + _.sprintf(gettext("at layer %(layer)s"), {layer: hold.layer});
            }
            if (hold.holder) {
                text += " " + _.sprintf(gettext("by %(holder)s"), {holder: hold.holder});
            }
            return text;
        });
        self.holdShort = ko.pureComputed(function () {
            var hold = self.hold();
            if (!self.holdActive()) {
                return "";
            }
            return hold.layer !== undefined && hold.layer !== null ? "L" + hold.layer : hold.phase;
        });

        self.canOpenSettings = ko.pureComputed(function () {
            return self.loginState.hasPermission(self.access.permissions.SETTINGS);
        });
        self.openSettings = function () {
            if (self.canOpenSettings()) {
                self.settingsViewModel.show("settings_plugin_" + PLUGIN);
            }
            return false;
        };

        function listText(array) {
            return ko.pureComputed({
                read: function () {
                    return (array() || []).join(", ");
                },
                write: function (value) {
                    array(splitList(value));
                }
            });
        }

        self.onBeforeBinding = function () {
            self.s = self.settingsViewModel.settings.plugins.printmesh;
            self.excludeText = listText(self.s.events.exclude);
            self.gcodeAllowText = listText(self.s.commands.gcode_allow);
            self.trustedHoldersText = listText(self.s.commands.trusted_holders);
            self.topicPreview = ko.pureComputed(function () {
                var root = (self.s.topic_root() || "printmesh").replace(/\/+$/, "");
                var node = self.s.node_id() || gettext("<host name>");
                return root + "/" + node + "/printer/...";
            });
        };

        self.onSettingsBeforeSave = function () {
            if (!self.s) {
                return;
            }
            _.each(TEXTS, function (path) {
                var field = path.length === 1 ? self.s[path[0]] : self.s[path[0]][path[1]];
                if (ko.isObservable(field) && typeof field() === "string") {
                    var value = field().trim();
                    // topic levels: a leading or trailing "/" would make an empty level
                    field(path[path.length - 1].match(/root|prefix/) ? value.replace(/^\/+|\/+$/g, "") : value);
                }
            });
            _.each(NUMBERS, function (path) {
                var section = self.s[path[0]];
                var field = section && section[path[1]];
                if (!ko.isObservable(field)) {
                    return;
                }
                var value = field();
                if (typeof value === "string" && value.trim() !== "" && isFinite(Number(value))) {
                    field(Number(value));
                }
            });
        };

        self.onDataUpdaterPluginMessage = function (plugin, data) {
            if (plugin !== PLUGIN || !data) {
                return;
            }
            if (data.broker) {
                self.broker(BROKER[data.broker] ? data.broker : "unknown");
                self.brokerError(data.error || "");
            }
            if (data.hold !== undefined) {
                self.hold(data.hold);
            }
        };
    }

    OCTOPRINT_VIEWMODELS.push({
        construct: PrintmeshViewModel,
        dependencies: ["settingsViewModel", "loginStateViewModel", "accessViewModel"],
        elements: ["#settings_plugin_printmesh", "#navbar_plugin_printmesh"]
    });
});
