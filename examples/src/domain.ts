/**
 * The order flow's events and topics, shared by the order service and every consumer.
 */
import { Schema } from "effect"

export const OrderPlaced = Schema.TaggedStruct("OrderPlaced", {
  orderId: Schema.String,
  customerEmail: Schema.String.check(Schema.isMinLength(3)),
  items: Schema.Array(Schema.Struct({ sku: Schema.String, quantity: Schema.Int.check(Schema.isGreaterThan(0)) })),
  total: Schema.Number
})
export type OrderPlaced = typeof OrderPlaced.Type

export const PaymentProcessed = Schema.TaggedStruct("PaymentProcessed", {
  orderId: Schema.String,
  amount: Schema.Number,
  status: Schema.Literals(["captured", "declined"])
})
export type PaymentProcessed = typeof PaymentProcessed.Type

export const OrderEvent = Schema.Union([OrderPlaced, PaymentProcessed])
export type OrderEvent = typeof OrderEvent.Type

/** The destination carrying every order event, keyed by order id (per-order ordering). */
export const ordersDestination = "demo.orders"

/** A SKU the inventory service can never reserve: a permanent failure, dead-lettered without retries. */
export const discontinuedSku = "SKU-DISCONTINUED"
