"""The paid tiers: Supporter (monthly, priority boost and grant) and Credits (kudos bought), and Stripe."""
