// guiagent demo app: login, todos, settings. State lives in window.demoState (JSON-serialisable).
(function () {
  "use strict";

  var state = {
    view: "login",
    user: null,
    items: [],
    nextId: 1,
    settings: { emailNotifications: false, darkMode: false, language: "English" },
    savedSettings: null,
    message: "",
  };
  window.demoState = state;

  function $(id) { return document.getElementById(id); }

  function show(view) {
    state.view = view;
    ["login", "todos", "settings"].forEach(function (name) {
      $("view-" + name).hidden = name !== view;
    });
    $("nav").hidden = state.user === null;
  }

  function itemsLeft() {
    return state.items.filter(function (item) { return !item.done; }).length;
  }

  function renderTodos() {
    var list = $("todo-list");
    list.textContent = "";
    state.items.forEach(function (item) {
      var li = document.createElement("li");
      li.id = "item-" + item.id;
      if (item.done) li.className = "done";
      var text = document.createElement("span");
      text.className = "text";
      text.textContent = item.text;
      var complete = document.createElement("button");
      complete.type = "button";
      complete.id = "complete-" + item.id;
      complete.textContent = "Complete";
      complete.disabled = item.done;
      complete.setAttribute("aria-label", "Complete " + item.text);
      complete.addEventListener("click", function () {
        item.done = true;
        renderTodos();
      });
      var del = document.createElement("button");
      del.type = "button";
      del.id = "delete-" + item.id;
      del.textContent = "Delete";
      del.setAttribute("aria-label", "Delete " + item.text);
      del.addEventListener("click", function () {
        state.items = state.items.filter(function (other) { return other.id !== item.id; });
        renderTodos();
      });
      li.appendChild(text);
      li.appendChild(complete);
      li.appendChild(del);
      list.appendChild(li);
    });
    var left = itemsLeft();
    $("todo-counter").textContent = left + (left === 1 ? " item left" : " items left");
  }

  function renderSettings() {
    $("email-notifications").checked = state.settings.emailNotifications;
    $("dark-mode").checked = state.settings.darkMode;
    $("language").value = state.settings.language;
    document.body.classList.toggle("dark", !!(state.savedSettings && state.savedSettings.darkMode));
  }

  $("login-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var name = $("username").value.trim();
    var password = $("password").value;
    if (!name) {
      state.message = "Enter a username";
    } else if (password !== "secret") {
      state.message = "Invalid password";
    } else {
      state.user = name;
      state.message = "";
      $("welcome").textContent = "Welcome, " + name;
      $("password").value = "";
      show("todos");
      renderTodos();
    }
    $("login-message").textContent = state.message;
  });

  $("todo-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = $("new-item").value.trim();
    if (!text) return;
    state.items.push({ id: state.nextId++, text: text, done: false });
    $("new-item").value = "";
    renderTodos();
  });

  $("email-notifications").addEventListener("change", function (event) {
    state.settings.emailNotifications = event.target.checked;
    $("settings-message").textContent = "";
  });
  $("dark-mode").addEventListener("change", function (event) {
    state.settings.darkMode = event.target.checked;
    $("settings-message").textContent = "";
  });
  $("language").addEventListener("change", function (event) {
    state.settings.language = event.target.value;
    $("settings-message").textContent = "";
  });
  $("settings-form").addEventListener("submit", function (event) {
    event.preventDefault();
    state.savedSettings = JSON.parse(JSON.stringify(state.settings));
    $("settings-message").textContent = "Settings saved";
    renderSettings();
  });

  $("nav-todos").addEventListener("click", function () { show("todos"); renderTodos(); });
  $("nav-settings").addEventListener("click", function () { show("settings"); renderSettings(); });
  $("nav-signout").addEventListener("click", function () {
    state.user = null;
    state.message = "";
    $("username").value = "";
    $("password").value = "";
    $("login-message").textContent = "";
    $("settings-message").textContent = "";
    show("login");
  });

  show("login");
  renderTodos();
  renderSettings();
})();
