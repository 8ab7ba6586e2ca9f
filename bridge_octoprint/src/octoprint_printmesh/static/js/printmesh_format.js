/*
 * printmesh Dashboard: formatting helpers (pure functions, no Knockout, no DOM).
 * Times from the server are Unix seconds; the page corrects for the clock difference
 * with the "now" each update carries.
 */
(function (global) {
    "use strict";

    function pad(n) {
        return (n < 10 ? "0" : "") + n;
    }

    function num(value, digits, unit) {
        if (value === null || value === undefined || isNaN(value)) {
            return "–";
        }
        return Number(value).toFixed(digits === undefined ? 1 : digits) + (unit || "");
    }

    function duration(seconds) {
        if (seconds === null || seconds === undefined || isNaN(seconds)) {
            return "–";
        }
        var s = Math.max(0, Math.round(seconds));
        var h = Math.floor(s / 3600);
        var m = Math.floor((s % 3600) / 60);
        var rest = s % 60;
        if (h > 0) {
            return h + "h " + pad(m) + "m";
        }
        return m > 0 ? m + "m " + pad(rest) + "s" : rest + "s";
    }

    function clock(unix) {
        if (!unix) {
            return "–";
        }
        var d = new Date(unix * 1000);
        return pad(d.getHours()) + ":" + pad(d.getMinutes());
    }

    function bytes(n) {
        if (n === null || n === undefined) {
            return "–";
        }
        var units = ["B", "KB", "MB", "GB", "TB"];
        var i = 0;
        var v = n;
        while (v >= 1024 && i < units.length - 1) {
            v /= 1024;
            i += 1;
        }
        return v.toFixed(i === 0 ? 0 : 1) + " " + units[i];
    }

    // "offline since 14:02" (or just "offline" when the time is not known)
    function offline(section) {
        if (!section || section.online !== false) {
            return "";
        }
        return section.since ? "offline since " + clock(section.since) : "offline";
    }

    global.PrintmeshFormat = {
        num: num,
        duration: duration,
        clock: clock,
        bytes: bytes,
        offline: offline,
        pad: pad
    };
})(window);
