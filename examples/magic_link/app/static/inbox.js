// The "check your inbox" page: listens on /cable (the published @rails/actioncable client, vendored from npm)
// for the job that sends this session's sign-in link, and says so the moment the email is sent.
import { createConsumer } from "./vendor/actioncable.esm.js"

const inbox = document.getElementById("inbox")
const status = document.getElementById("delivery-status")

function showSent(data) {
  inbox.dataset.state = "sent"
  status.replaceChildren("Sent! A sign-in link is in the inbox of ", Object.assign(document.createElement("strong"),
    { textContent: data.email }), ".")
}

const consumer = createConsumer()
consumer.subscriptions.create({ channel: "InboxChannel" }, {
  connected() { inbox.dataset.cable = "connected" },
  disconnected() { inbox.dataset.cable = "disconnected" },
  rejected() { inbox.dataset.cable = "rejected" },
  received(data) { if (data && data.status === "sent") showSent(data) },
})
