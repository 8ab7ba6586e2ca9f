/*
 * printmesh Dashboard tab: a Knockout view model fed by the plugin's messages.
 *
 * While the tab is open and the page visible, the page announces itself (POST watch, every
 * 10 s); the server sends nothing to a page that does not. The first announcement returns
 * every section; then {"dash": {"now", "patch": {key: {field: value} | null}}} plugin
 * messages carry the changed fields only, at most twice a second per section.
 * Shell outputs never come that way: they are fetched from the permission-checked API.
 * The kiosk URL (/plugin/printmesh/kiosk) lands here with ?printmesh=kiosk: no OctoPrint chrome.
 */
(function () {
    if (/[?&]printmesh=kiosk\b/.test(window.location.search)) {
        document.documentElement.className += " printmesh-kiosk";
        // OctoPrint's page has no viewport setting (phones render it 980 px wide, scaled down);
        // the kiosk lays itself out for the screen's own width, a phone's included.
        var meta = document.createElement("meta");
        meta.name = "viewport";
        meta.content = "width=device-width, initial-scale=1";
        document.head.appendChild(meta);
    }
})();

$(function () {
    var PLUGIN = "printmesh";
    var TAB = "#tab_plugin_printmesh";
    var PING = 10000;
    var F = window.PrintmeshFormat;
    var W = window.PrintmeshWidgets;
    var KIOSK = /[?&]printmesh=kiosk\b/.test(window.location.search);

    function DashboardViewModel(parameters) {
        var self = this;
        self.loginState = parameters[0];
        self.F = F;
        self.kiosk = KIOSK;
        self.client = "p" + Math.random().toString(36).slice(2, 12);
        self.watching = false;
        self.tabActive = KIOSK;
        self.timer = null;
        self.skew = 0; // local clock minus the server's, seconds
        self.clock = ko.observable(Date.now() / 1000);

        self.sections = {}; // key -> observable section
        self.keys = ko.observableArray([]);
        self.layout = ko.observableArray([]);
        self.canEdit = ko.observable(false);
        self.editing = ko.observable(false);
        self.shellAllowed = ko.observable(false);
        self.shellOutputs = ko.observableArray([]);
        self.camera = ko.observable(null);

        self.section = function (key) {
            if (!self.sections[key]) {
                self.sections[key] = ko.observable(null);
            }
            return self.sections[key];
        };
        function get(key) {
            return self.section(key)() || {};
        }
        function listOf(prefix) {
            return ko.pureComputed(function () {
                return _.filter(self.keys(), function (k) {
                    return k.indexOf(prefix) === 0;
                }).sort().map(function (k) {
                    return self.section(k)() || {};
                });
            });
        }

        self.printer = ko.pureComputed(function () {
            return get("printer");
        });
        self.heat = ko.pureComputed(function () {
            return get("heat");
        });
        self.job = ko.pureComputed(function () {
            return get("job");
        });
        self.capture = ko.pureComputed(function () {
            return get("capture");
        });
        self.nodes = ko.pureComputed(function () {
            var nodes = get("nodes");
            return _.map(_.keys(nodes).sort(), function (k) {
                return _.extend({key: k}, nodes[k]);
            });
        });
        self.hosts = listOf("host:");
        self.sensors = listOf("sensor:");
        self.cameras = listOf("camera:");
        self.printing = ko.pureComputed(function () {
            return !!self.printer().printing;
        });

        self.fans = ko.pureComputed(function () {
            var fans = self.heat().fans || {};
            return _.map(_.keys(fans).sort(), function (k) {
                return {name: "fan " + k, speed: fans[k]};
            });
        });
        self.bars = ko.pureComputed(function () {
            return W.layerBars(get("layer_times"), 300, 80);
        });
        self.grid = ko.pureComputed(function () {
            return W.gridPreview(self.capture(), 220);
        });
        self.selectedCamera = ko.pureComputed(function () {
            var cams = self.cameras();
            var chosen = self.camera();
            return _.find(cams, function (c) {
                return c.node + "/" + c.name === chosen;
            }) || cams[0] || null;
        });
        self.cameraNames = ko.pureComputed(function () {
            return _.map(self.cameras(), function (c) {
                return c.node + "/" + c.name;
            });
        });
        self.url = function (path) {
            return path ? BASEURL + path : "";
        };
        // previews come from a Tornado route that takes a short-lived key instead of the session
        // (see preview_keys.py); a plain variable, so renewing the key does not refetch the image
        var previewKey = null;
        self.previewUrl = function (path) {
            return path && previewKey ? BASEURL + path + "&k=" + encodeURIComponent(previewKey) : "";
        };
        self.age = function (ts) {
            return ts ? F.duration(self.clock() - self.skew - ts) : "–";
        };
        self.localTime = function (ts) {
            return ts ? F.clock(ts + self.skew) : "–";
        };

        self.visibleWidgets = ko.pureComputed(function () {
            var printing = self.printing();
            return _.filter(self.layout(), function (w) {
                return w.enabled && (!w.printing_only || printing);
            });
        });
        self.title = function (id) {
            return W.TITLES[id] || id;
        };

        // ------------------------------------------------------------ layout editing
        self.move = function (widget, delta) {
            var list = self.layout().slice();
            var i = list.indexOf(widget);
            var j = i + delta;
            if (i < 0 || j < 0 || j >= list.length) {
                return;
            }
            list.splice(i, 1);
            list.splice(j, 0, widget);
            self.layout(list);
        };
        self.toggle = function (widget, field) {
            var list = self.layout().slice();
            var i = list.indexOf(widget);
            list[i] = _.extend({}, widget);
            list[i][field] = !widget[field];
            self.layout(list);
        };
        self.saveLayout = function () {
            var widgets = _.map(self.layout(), function (w) {
                return {id: w.id, enabled: !!w.enabled, printing_only: !!w.printing_only};
            });
            return OctoPrint.simpleApiCommand(PLUGIN, "layout", {widgets: widgets}).done(function (response) {
                self.layout(response.layout);
                self.editing(false);
            });
        };

        // ------------------------------------------------------------ data
        // replace: a full snapshot; merge: patches (of sections this page has) or whole new sections
        function applySections(sections, replace, merge) {
            var keys = replace ? [] : self.keys().slice();
            _.each(sections, function (value, key) {
                if (value === null) {
                    keys = _.without(keys, key);
                    self.section(key)(null);
                    return;
                }
                var current = replace ? null : self.section(key)();
                if (merge && !current) {
                    return; // a change to a section this page never had: its snapshot is on the way
                }
                self.section(key)(merge ? _.extend({}, current, value) : value);
                if (keys.indexOf(key) < 0) {
                    keys.push(key);
                }
            });
            if (replace) {
                _.each(_.keys(self.sections), function (key) {
                    if (!(key in sections)) {
                        self.section(key)(null);
                    }
                });
            }
            self.keys(keys);
            if ("shells" in sections) {
                self.fetchShell();
            }
        }
        self.fetchShell = function () {
            if (!self.shellAllowed()) {
                self.shellOutputs([]);
                return;
            }
            OctoPrint.get("api/plugin/" + PLUGIN + "?shell=1").done(function (response) {
                self.shellOutputs(response.outputs || []);
            });
        };

        function announce(full) {
            return OctoPrint.simpleApiCommand(PLUGIN, "watch", {client: self.client, full: full}).done(function (r) {
                if (!self.editing()) {
                    // the periodic announce must not undo a rearrangement in progress
                    self.layout(r.layout || []);
                }
                self.canEdit(!!r.can_edit);
                previewKey = r.preview_key || null;
                self.shellAllowed(!!r.shell);
                if (r.sections) {
                    self.skew = Date.now() / 1000 - r.now;
                    applySections(r.sections, true, false);
                }
            });
        }
        self.update = function () {
            var want = self.tabActive && !document.hidden && self.loginState.isUser();
            if (want && !self.watching) {
                self.watching = true;
                announce(true);
                self.timer = window.setInterval(function () {
                    self.clock(Date.now() / 1000);
                }, 1000);
                self.pinger = window.setInterval(function () {
                    announce(false);
                }, PING);
            } else if (!want && self.watching) {
                self.watching = false;
                window.clearInterval(self.timer);
                window.clearInterval(self.pinger);
                OctoPrint.simpleApiCommand(PLUGIN, "leave", {client: self.client});
            }
        };
        document.addEventListener("visibilitychange", self.update);

        self.onAfterTabChange = function (current) {
            self.tabActive = KIOSK || current === TAB;
            self.update();
        };
        self.onStartupComplete = function () {
            if (KIOSK) {
                $('a[href="' + TAB + '"]').tab("show");
            }
            self.update();
        };
        self.onUserLoggedIn = self.update;
        self.onUserLoggedOut = self.update;
        self.onServerReconnect = function () {
            if (self.watching) {
                announce(true);
            }
        };
        self.onDataUpdaterPluginMessage = function (plugin, data) {
            if (plugin !== PLUGIN || !data) {
                return;
            }
            if (data.layout && !self.editing()) {
                self.layout(data.layout);
            }
            if (data.dash && self.watching) {
                self.skew = Date.now() / 1000 - data.dash.now;
                applySections(data.dash.set || {}, false, false);
                applySections(data.dash.patch || {}, false, true);
            }
        };
    }

    OCTOPRINT_VIEWMODELS.push({
        construct: DashboardViewModel,
        dependencies: ["loginStateViewModel"],
        elements: ["#tab_plugin_printmesh"]
    });
});
