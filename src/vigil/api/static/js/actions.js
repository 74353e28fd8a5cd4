// Operator actions, each behind a confirmation dialog, each one the API call the CLI makes:
// os-services PUT at microversion 2.53 (vigil service set), /v2.1/vigil/hosts (vigil host
// maintenance / release / evacuate). Offered only where the caller's policy allows the rule;
// the API checks again on every call.

import { call } from "./api.js";
import { $, toast } from "./util.js";

const UPDATE = "os_compute_api:os-services:update";

function servicePut(svc, body) {
  return {
    call: `PUT /v2.1/os-services/${svc.uuid} ${JSON.stringify(body)} (microversion 2.53)`,
    run: () => call("PUT", `/v2.1/os-services/${svc.uuid}`, { body, version: "2.53" }),
  };
}

/** The actions on one compute service and its host that this caller may take. */
export function actionsFor(svc, facts, can) {
  const out = [];
  if (!svc || svc.topic !== "compute") return out;
  const host = svc.host;
  if (can(UPDATE)) {
    if (svc.status === "enabled") {
      out.push({
        id: "disable", label: "Disable…", rule: UPDATE, reason: "optional",
        title: `Disable ${svc.binary} on ${host}`,
        text: "The scheduler places nothing new on a disabled host. Running instances stay.",
        make: (reason) => servicePut(svc, reason ? { status: "disabled", disabled_reason: reason }
          : { status: "disabled" }),
      });
    } else {
      out.push({
        id: "enable", label: "Enable", rule: UPDATE, title: `Enable ${svc.binary} on ${host}`,
        text: `Clears the disabled reason${svc.disabled_reason ? ` ("${svc.disabled_reason}")` : ""}.`,
        make: () => servicePut(svc, { status: "enabled" }),
      });
    }
    if (!svc.forced_down) {
      out.push({
        id: "force-down", label: "Force down…", rule: UPDATE, danger: true,
        title: `Force ${host} down`,
        text: "Marks the service down whatever its heartbeat says. Only do this for a host you know is off: external tools may evacuate it.",
        make: () => servicePut(svc, { forced_down: true }),
      });
    } else {
      out.push({
        id: "unforce-down", label: "Clear forced down", rule: UPDATE,
        title: `Clear the forced down of ${host}`,
        text: "Its state follows its heartbeat again.",
        make: () => servicePut(svc, { forced_down: false }),
      });
    }
  }
  if (can("vigil:hosts:maintenance")) {
    const inMaintenance = facts ? facts.maintenance : svc.maintenance;
    if (!inMaintenance) {
      out.push({
        id: "maintenance-on", label: "Maintenance on…", rule: "vigil:hosts:maintenance",
        reason: "optional", title: `Put ${host} in maintenance`,
        text: "The HA monitor opens no recovery for it (and cancels one that has not fenced yet); the scheduler places nothing new on it.",
        make: (reason) => {
          const body = { host: reason ? { maintenance: true, maintenance_reason: reason } : { maintenance: true } };
          return { call: `PUT /v2.1/vigil/hosts/${host} ${JSON.stringify(body)}`,
                   run: () => call("PUT", `/v2.1/vigil/hosts/${encodeURIComponent(host)}`, { body }) };
        },
      });
    } else {
      out.push({
        id: "maintenance-off", label: "Maintenance off", rule: "vigil:hosts:maintenance",
        title: `Take ${host} out of maintenance`,
        text: "The HA monitor watches it again: if it is down now, it is recovered as usual.",
        make: () => {
          const body = { host: { maintenance: false } };
          return { call: `PUT /v2.1/vigil/hosts/${host} ${JSON.stringify(body)}`,
                   run: () => call("PUT", `/v2.1/vigil/hosts/${encodeURIComponent(host)}`, { body }) };
        },
      });
    }
  }
  const quarantined = facts ? facts.quarantined : svc.quarantined;
  if (quarantined && can("vigil:hosts:release")) {
    out.push({
      id: "release", label: "Release quarantine…", rule: "vigil:hosts:release", reason: "required",
      danger: true, title: `Release ${host} from its quarantine`,
      text: "It may start instances again at its agent's next reconciliation; nothing more is evacuated from it. The release and its reason go into the recovery's timeline.",
      make: (reason) => {
        const body = { release: { reason } };
        return { call: `POST /v2.1/vigil/hosts/${host}/action ${JSON.stringify(body)}`,
                 run: () => call("POST", `/v2.1/vigil/hosts/${encodeURIComponent(host)}/action`, { body }) };
      },
    });
  }
  if (can("vigil:hosts:evacuate") && !quarantined) {
    out.push({
      id: "evacuate", label: "Evacuate host…", rule: "vigil:hosts:evacuate", danger: true,
      title: `Evacuate ${host}`,
      text: "The operator's \"this host is dead\" (vigil host evacuate): the HA monitor disables it, fences it (power off), forces it down and rebuilds its instances elsewhere. Refused while the host still reports or its state is unknown.",
      make: () => {
        const body = { evacuate: {} };
        return { call: `POST /v2.1/vigil/hosts/${host}/action ${JSON.stringify(body)}`,
                 run: () => call("POST", `/v2.1/vigil/hosts/${encodeURIComponent(host)}/action`, { body }) };
      },
    });
  }
  return out;
}

/** Ask, then act. Resolves true when the call succeeded. */
export function confirmAction(action) {
  const dialog = $("confirm");
  const reasonInput = $("confirm-reason");
  const errorBox = $("confirm-error");
  const ok = $("confirm-ok");
  $("confirm-title").textContent = action.title;
  $("confirm-text").textContent = action.text;
  reasonInput.value = "";
  reasonInput.hidden = !action.reason;
  $("confirm-reason-label").hidden = !action.reason;
  $("confirm-reason-label").textContent = action.reason === "required" ? "Reason (required)" : "Reason (optional)";
  reasonInput.required = action.reason === "required";
  errorBox.hidden = true;
  ok.className = action.danger ? "danger" : "primary";
  ok.disabled = false;
  dialog.dataset.action = action.id;
  const preview = () => { $("confirm-call").textContent = action.make(reasonInput.value.trim()).call; };
  preview();
  reasonInput.oninput = preview;
  return new Promise((resolve) => {
    const finish = (result) => {
      $("confirm-form").onsubmit = null;
      $("confirm-cancel").onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(result);
    };
    $("confirm-cancel").onclick = () => finish(false);
    dialog.onclose = () => finish(false);
    $("confirm-form").onsubmit = async (e) => {
      e.preventDefault();
      const reason = reasonInput.value.trim();
      if (action.reason === "required" && !reason) {
        errorBox.textContent = "A reason is required.";
        errorBox.hidden = false;
        return;
      }
      ok.disabled = true;
      try {
        await action.make(reason).run();
        toast(`${action.title}: done`);
        finish(true);
      } catch (err) {
        errorBox.textContent = `${err.status ? `${err.status}: ` : ""}${err.message}`;
        errorBox.hidden = false;
        ok.disabled = false;
      }
    };
    dialog.showModal();
    if (action.reason) reasonInput.focus(); else ok.focus();
  });
}
